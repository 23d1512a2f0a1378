// sd_notify(3) without libsystemd: see sd_notify.h.
#include "sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

namespace fulcrum::addon {

namespace {

// Fill `address` from $NOTIFY_SOCKET's value; returns the length to pass to
// sendto(), or -EINVAL. An abstract name ('@' first) is a NUL then the name,
// and its length counts only the bytes used (no trailing NUL): the kernel
// compares abstract names by exactly that many bytes.
int notify_address(const std::string& socket_path, sockaddr_un* address) {
  std::memset(address, 0, sizeof *address);
  address->sun_family = AF_UNIX;
  if (socket_path.size() < 2 || socket_path.size() > sizeof address->sun_path - 1) return -EINVAL;
  if (socket_path[0] == '@') {
    address->sun_path[0] = '\0';
    std::memcpy(address->sun_path + 1, socket_path.data() + 1, socket_path.size() - 1);
    return static_cast<int>(offsetof(sockaddr_un, sun_path) + socket_path.size());
  }
  // systemd sets an absolute path; a relative one would depend on our cwd.
  if (socket_path[0] != '/') return -EINVAL;
  std::memcpy(address->sun_path, socket_path.data(), socket_path.size());
  return static_cast<int>(offsetof(sockaddr_un, sun_path) + socket_path.size() + 1);
}

}  // namespace

int sd_notify_send(const std::string& socket_path, const std::string& message) {
  sockaddr_un address;
  const int length = notify_address(socket_path, &address);
  if (length < 0) return length;
  // A new socket per message, as libsystemd does: notifications are rare
  // (a few a second at most) and nothing is kept open across a fork/exec.
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -errno;
  int result = 0;
  // MSG_NOSIGNAL: a closed peer is an error to report, never a SIGPIPE.
  if (sendto(fd, message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&address),
             static_cast<socklen_t>(length)) < 0) {
    result = -errno;
  }
  close(fd);
  return result;
}

Napi::Value sd_notify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsString()) {
    throw Napi::TypeError::New(env, "sdNotify(socketPath: string, message: string)");
  }
  return Napi::Number::New(env, sd_notify_send(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value()));
}

}  // namespace fulcrum::addon
