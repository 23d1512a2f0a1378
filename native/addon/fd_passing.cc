#include "fd_passing.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "errors.h"

namespace fulcrum::addon {

namespace {

// The kernel's limit on descriptors in one SCM_RIGHTS message.
constexpr uint32_t kMaxFds = 253;
// Room for the text of one message (the manifest of what the fds are).
constexpr size_t kMaxText = 64 * 1024;

int fd_argument(Napi::Env env, Napi::Value value, const char* what) {
  if (!value.IsNumber() || value.As<Napi::Number>().Int32Value() < 0) {
    throw Napi::TypeError::New(env, std::string(what) + " must be a file descriptor (integer >= 0)");
  }
  return value.As<Napi::Number>().Int32Value();
}

Napi::Value socket_pair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fds[2];
  // SEQPACKET keeps message boundaries, so each message's fds arrive with its text.
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0) throw errno_error(env, errno, "socketpair");
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, fds[0]);
  out.Set(1u, fds[1]);
  return out;
}

Napi::Value send_fds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int sock = fd_argument(env, info[0], "send: sock");
  if (!info[1].IsString() || !info[2].IsArray()) throw Napi::TypeError::New(env, "send(sock, text, fds[], dontWait?)");
  // dontWait: the caller's event loop must not stall on a peer that reads
  // slowly (an upgrade streams session records while VRRP adverts are due).
  const bool dont_wait = info.Length() > 3 && info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
  const std::string text = info[1].As<Napi::String>().Utf8Value();
  Napi::Array array = info[2].As<Napi::Array>();
  if (text.empty() || text.size() > kMaxText) throw Napi::RangeError::New(env, "send: text must be 1..65536 bytes");
  if (array.Length() > kMaxFds) throw Napi::RangeError::New(env, "send: at most 253 fds in one message");
  std::vector<int> fds;
  for (uint32_t i = 0; i < array.Length(); i++) fds.push_back(fd_argument(env, array.Get(i), "send: fds[i]"));

  iovec iov{const_cast<char*>(text.data()), text.size()};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxFds));
  if (!fds.empty()) {
    message.msg_control = control.data();
    message.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t sent;
  do {
    sent = sendmsg(sock, &message, MSG_NOSIGNAL | (dont_wait ? MSG_DONTWAIT : 0));
  } while (sent < 0 && errno == EINTR);
  // EAGAIN (dontWait): the peer's queue is full; nothing was sent, try again later.
  if (sent < 0 && dont_wait && (errno == EAGAIN || errno == EWOULDBLOCK)) return Napi::Boolean::New(env, false);
  if (sent < 0) throw errno_error(env, errno, "sending file descriptors");
  return Napi::Boolean::New(env, true);
}

Napi::Value receive_fds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int sock = fd_argument(env, info[0], "receive: sock");
  if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "receive(sock, timeoutMs)");
  const int timeout_ms = info[1].As<Napi::Number>().Int32Value();
  pollfd waiting{sock, POLLIN, 0};
  int ready;
  do {
    ready = poll(&waiting, 1, timeout_ms < 0 ? 0 : timeout_ms);
  } while (ready < 0 && errno == EINTR);
  if (ready < 0) throw errno_error(env, errno, "waiting for file descriptors");
  if (ready == 0) return env.Null();

  std::vector<char> text(kMaxText);
  iovec iov{text.data(), text.size()};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxFds));
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control.data();
  message.msg_controllen = control.size();
  ssize_t received;
  do {
    // MSG_CMSG_CLOEXEC: a received socket must not leak into a later child.
    received = recvmsg(sock, &message, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (received < 0 && errno == EINTR);
  if (received < 0) {
    if (errno == EAGAIN) return env.Null();
    // The peer exited with our messages unread: the end of the stream, as for an orderly close.
    if (errno == ECONNRESET) received = 0;
    else throw errno_error(env, errno, "receiving file descriptors");
  }
  std::vector<int> fds;
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr; header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const size_t first = fds.size();
    fds.resize(first + count);
    std::memcpy(fds.data() + first, CMSG_DATA(header), sizeof(int) * count);
  }
  if ((message.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0) {
    // Part of the message was lost: nothing in it can be trusted.
    for (int fd : fds) close(fd);
    throw errno_error(env, EMSGSIZE, "receiving file descriptors (message truncated)");
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("text", std::string(text.data(), static_cast<size_t>(received)));
  Napi::Array list = Napi::Array::New(env, fds.size());
  for (uint32_t i = 0; i < fds.size(); i++) list.Set(i, fds[i]);
  out.Set("fds", list);
  return out;
}

Napi::Value close_fd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  close(fd_argument(env, info[0], "close: fd"));
  return env.Undefined();
}

}  // namespace

Napi::Object fd_passing_exports(Napi::Env env) {
  Napi::Object exports = Napi::Object::New(env);
  exports.Set("socketPair", Napi::Function::New(env, socket_pair, "socketPair"));
  exports.Set("send", Napi::Function::New(env, send_fds, "send"));
  exports.Set("receive", Napi::Function::New(env, receive_fds, "receive"));
  exports.Set("close", Napi::Function::New(env, close_fd, "close"));
  exports.Set("maxFds", kMaxFds);
  return exports;
}

}  // namespace fulcrum::addon
