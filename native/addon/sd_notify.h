// The systemd notify protocol (sd_notify(3)): one datagram of KEY=VALUE lines
// sent to the unix socket named by $NOTIFY_SOCKET. Node's dgram speaks only
// UDP, so the send is here; which messages to send, and when, is decided in
// TypeScript (src/systemd/).
#pragma once

#include <napi.h>

#include <string>

namespace fulcrum::addon {

// Send `message` as one datagram to the unix socket `socket_path`: a file
// system path ("/run/systemd/notify") or an abstract name written with a
// leading '@' ("@/org/freedesktop/systemd1/notify"). Returns 0 when the kernel
// took the datagram, -errno otherwise (-EINVAL for a path that is empty, too
// long for sockaddr_un, or neither absolute nor abstract; -ENOENT when nothing
// listens at the path; -ECONNREFUSED, -EAGAIN...). Blocks no longer than one
// non-blocking sendto(); runs on the calling (JS) thread.
int sd_notify_send(const std::string& socket_path, const std::string& message);

// JS: sdNotify(socketPath: string, message: string) -> 0 | -errno.
Napi::Value sd_notify(const Napi::CallbackInfo& info);

}  // namespace fulcrum::addon
