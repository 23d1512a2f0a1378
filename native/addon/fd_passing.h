// Passing file descriptors between processes over a unix socket
// (SCM_RIGHTS), for the upgrade: the running Fulcrum hands every listening
// socket to the one it starts (src/upgrade/). Node cannot send descriptors
// itself, so these few functions do it.
//
// JS API (typed in src/engine/native.ts as `fdPassing`):
//   socketPair() -> [a, b]                 SOCK_SEQPACKET, close-on-exec, blocking
//   send(sock, text, fds[]) -> undefined   one message: text and the fds (throws {code})
//   receive(sock, timeoutMs) -> {text, fds} | null     null after timeoutMs without
//                                          a message; {text: '', fds: []} at end of
//                                          stream (the peer closed, or exited with
//                                          messages unread); throws {code}
//   close(fd)
//   maxFds                                 most fds in one message (SCM_MAX_FD)
#pragma once

#include <napi.h>

namespace fulcrum::addon {

Napi::Object fd_passing_exports(Napi::Env env);

}  // namespace fulcrum::addon
