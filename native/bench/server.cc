#include "server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "protocol.h"
#include "session.h"
#include "socket_util.h"

namespace fulcrum::bench {

namespace {

constexpr size_t kScratchSize = 128 * 1024;
constexpr int kReadsPerEvent = 8;
constexpr size_t kUdpBatch = 32;
constexpr size_t kUdpBufferSize = 9216;
constexpr uint64_t kDrainAfterErrorNs = 1'000'000'000;
// A connection that has not completed its HELLO by then is closed.
constexpr uint64_t kHelloTimeoutNs = 10'000'000'000;
constexpr size_t kMaxLogLines = 1000;

std::string peer_name(const sockaddr_storage& address) {
  char host[INET6_ADDRSTRLEN] = "?";
  char text[INET6_ADDRSTRLEN + 16];
  if (address.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address);
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    snprintf(text, sizeof text, "%s:%d", host, ntohs(v4->sin_port));
  } else {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address);
    inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    snprintf(text, sizeof text, "[%s]:%d", host, ntohs(v6->sin6_port));
  }
  return text;
}

// What a TCP connection is doing; set by its HELLO.
enum class ConnState {
  kAwaitHello,  // reading the first frame
  kControl,     // exchanging frames
  kSink,        // counting what arrives
  kSource,      // writing as fast as possible
  kEcho,        // echoing
  kEchoOnce,    // echoing `echo_remaining` more bytes, then closing
  kDraining,    // refused: ERROR written, FIN sent, discarding input until EOF
};

struct Connection {
  int fd = -1;
  ConnState state = ConnState::kAwaitHello;
  std::string peer;
  std::vector<uint8_t> in;   // frame bytes not yet parsed
  std::vector<uint8_t> out;  // bytes to write before anything else
  size_t out_offset = 0;
  std::shared_ptr<Session> session;
  StreamCount* stream = nullptr;
  uint64_t echo_remaining = 0;
  bool close_after_flush = false;
  uint64_t drain_deadline_ns = 0;
  uint64_t accepted_ns = 0;
};

}  // namespace

class ServerWorker {
 public:
  ServerWorker(Server::Shared* shared, SessionTable* sessions) : shared_(shared), sessions_(sessions) {}
  ~ServerWorker() { close_all(); }

  // Binds this worker's sockets to host:*port (0: pick one and set *port).
  // The first worker probes first, so a port already in use is an error
  // instead of silently joining someone else's SO_REUSEPORT group.
  int bind(const Endpoint& endpoint, int* port, bool first);
  void start() { thread_ = std::thread([this] { run(); }); }
  void stop() {
    if (stop_fd_ >= 0) {
      const uint64_t one = 1;
      [[maybe_unused]] ssize_t n = write(stop_fd_, &one, sizeof one);
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run();
  void accept_connections();
  void on_connection_event(Connection* conn, uint32_t events);
  void read_frames(Connection* conn);
  // Parses frames from conn->in; returns false when the connection was closed.
  bool process_frames(Connection* conn);
  bool on_hello(Connection* conn, const uint8_t* payload, uint32_t length);
  // Returns false when the connection was closed.
  bool reply_results(Connection* conn);
  void refuse(Connection* conn, ErrorCode code, const std::string& why);
  void read_sink(Connection* conn);
  void write_source(Connection* conn);
  void read_source(Connection* conn);
  void echo(Connection* conn);
  void drain(Connection* conn);
  // Writes conn->out; returns false when the connection was closed.
  bool flush(Connection* conn);
  void queue_out(Connection* conn, const uint8_t* data, size_t size);
  void set_interest(Connection* conn, uint32_t events);
  void close_connection(Connection* conn);
  void close_all();
  void receive_datagrams();
  void count_datagram(const uint8_t* data, size_t size);
  // Closes refused connections whose drain time is over and refuses those
  // that sent no HELLO in time. Runs at most every 100 ms.
  void expire_drains();

  Server::Shared* shared_;
  SessionTable* sessions_;
  int epoll_fd_ = -1;
  int stop_fd_ = -1;
  int listen_fd_ = -1;
  int udp_fd_ = -1;
  std::thread thread_;
  std::unordered_map<int, std::unique_ptr<Connection>> connections_;
  std::vector<uint8_t> scratch_ = std::vector<uint8_t>(kScratchSize, 0x5a);
  std::vector<uint8_t> udp_buffers_ = std::vector<uint8_t>(kUdpBatch * kUdpBufferSize);
  // Last session a datagram named: most datagrams in a row belong to one run.
  std::shared_ptr<Session> cached_session_;
  uint64_t next_drain_check_ns_ = 0;
};

void Server::Shared::add_log(std::string line) {
  std::lock_guard lock(log_mutex);
  if (log.size() >= kMaxLogLines) log.pop_front();
  log.push_back(std::move(line));
}

namespace {

// -EADDRINUSE when a plain (non-SO_REUSEPORT) socket of `type` cannot bind
// `local`: someone else holds the port, possibly in a reuseport group.
int probe_free(const Endpoint& local, int type) {
  const int fd = socket(local.family(), type | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  const int one = 1;
  if (type == SOCK_STREAM) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const int result = ::bind(fd, local.get(), local.length) < 0 ? -errno : 0;
  close(fd);
  return result;
}

}  // namespace

int ServerWorker::bind(const Endpoint& endpoint, int* port, bool first) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epoll_fd_ < 0 || stop_fd_ < 0) return -errno;
  Endpoint local = endpoint;
  if (local.family() == AF_INET) reinterpret_cast<sockaddr_in*>(&local.storage)->sin_port = htons(static_cast<uint16_t>(*port));
  else reinterpret_cast<sockaddr_in6*>(&local.storage)->sin6_port = htons(static_cast<uint16_t>(*port));
  const int one = 1;
  if (first && *port != 0) {
    const int busy = probe_free(local, SOCK_STREAM);
    if (busy < 0) return busy;
  }
  listen_fd_ = socket(local.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return -errno;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (::bind(listen_fd_, local.get(), local.length) < 0 || listen(listen_fd_, 1024) < 0) return -errno;
  if (*port == 0) {
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &length);
    *port = bound.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port)
                                       : ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
    if (local.family() == AF_INET) reinterpret_cast<sockaddr_in*>(&local.storage)->sin_port = htons(static_cast<uint16_t>(*port));
    else reinterpret_cast<sockaddr_in6*>(&local.storage)->sin6_port = htons(static_cast<uint16_t>(*port));
  }
  if (first) {
    const int busy = probe_free(local, SOCK_DGRAM);
    if (busy < 0) return busy;
  }
  udp_fd_ = socket(local.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (udp_fd_ < 0) return -errno;
  setsockopt(udp_fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  // A larger receive buffer absorbs bursts at high packet rates.
  const int buffer = 4 << 20;
  setsockopt(udp_fd_, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
  if (::bind(udp_fd_, local.get(), local.length) < 0) return -errno;
  epoll_event ev{};
  ev.events = EPOLLIN;
  for (int fd : {stop_fd_, listen_fd_, udp_fd_}) {
    ev.data.fd = fd;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) < 0) return -errno;
  }
  return 0;
}

void ServerWorker::run() {
  epoll_event events[64];
  for (;;) {
    const int n = epoll_wait(epoll_fd_, events, 64, connections_.empty() ? 1000 : 100);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; i++) {
      const int fd = events[i].data.fd;
      if (fd == stop_fd_) return;
      if (fd == listen_fd_) {
        accept_connections();
      } else if (fd == udp_fd_) {
        receive_datagrams();
      } else {
        auto it = connections_.find(fd);
        if (it != connections_.end()) on_connection_event(it->second.get(), events[i].events);
      }
    }
    expire_drains();
  }
}

void ServerWorker::accept_connections() {
  for (int i = 0; i < 64; i++) {
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    const int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      // EAGAIN: none left. EMFILE/ENFILE: out of fds; the listener stays
      // readable and we retry on the next wakeup. Others are per-connection.
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        shared_->add_log(std::string("accept: ") + strerror(errno));
      }
      return;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto conn = std::make_unique<Connection>();
    conn->fd = fd;
    conn->peer = peer_name(peer);
    conn->accepted_ns = now_ns();
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) < 0) {
      close(fd);
      continue;
    }
    shared_->connections.fetch_add(1, std::memory_order_relaxed);
    connections_[fd] = std::move(conn);
  }
}

void ServerWorker::set_interest(Connection* conn, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = conn->fd;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, conn->fd, &ev);
}

void ServerWorker::close_connection(Connection* conn) {
  if (conn->stream != nullptr) {
    // The count is final before the peer can see the close (release pairs
    // with the acquire when RESULTS is built on whichever worker).
    conn->stream->state.store(static_cast<uint8_t>(StreamState::kDone), std::memory_order_release);
  }
  if (conn->state == ConnState::kControl && conn->session) sessions_->close(conn->session->id);
  const int fd = conn->fd;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  close(fd);
  connections_.erase(fd);  // destroys conn
}

void ServerWorker::close_all() {
  for (auto& [fd, conn] : connections_) {
    if (conn->state == ConnState::kControl && conn->session) sessions_->close(conn->session->id);
    close(fd);
  }
  connections_.clear();
  for (int* fd : {&listen_fd_, &udp_fd_, &stop_fd_, &epoll_fd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

void ServerWorker::on_connection_event(Connection* conn, uint32_t events) {
  if (!conn->out.empty() && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
    if (!flush(conn)) return;
    if (!conn->out.empty()) return;
  }
  switch (conn->state) {
    case ConnState::kAwaitHello:
    case ConnState::kControl:
      if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) read_frames(conn);
      return;
    case ConnState::kSink:
      if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) read_sink(conn);
      return;
    case ConnState::kSource:
      if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        read_source(conn);
        return;  // conn may be gone
      }
      if (events & EPOLLOUT) write_source(conn);
      return;
    case ConnState::kEcho:
    case ConnState::kEchoOnce:
      if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) echo(conn);
      return;
    case ConnState::kDraining:
      drain(conn);
      return;
  }
}

void ServerWorker::read_frames(Connection* conn) {
  uint8_t buffer[16 * 1024];
  const ssize_t n = recv(conn->fd, buffer, sizeof buffer, 0);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    close_connection(conn);
    return;
  }
  if (n == 0) {
    if (conn->state == ConnState::kAwaitHello && !conn->in.empty()) {
      shared_->protocol_errors.fetch_add(1, std::memory_order_relaxed);
      shared_->add_log(conn->peer + ": protocol error: connection closed inside the first frame");
    }
    close_connection(conn);
    return;
  }
  conn->in.insert(conn->in.end(), buffer, buffer + n);
  process_frames(conn);
}

bool ServerWorker::process_frames(Connection* conn) {
  size_t offset = 0;
  while (conn->state == ConnState::kAwaitHello || conn->state == ConnState::kControl) {
    if (conn->in.size() - offset < kFrameHeaderSize) break;
    FrameHeader header{};
    std::string why;
    const int bad = parse_frame_header(conn->in.data() + offset, &header, &why);
    if (bad != 0) {
      refuse(conn, static_cast<ErrorCode>(bad), why);
      return false;
    }
    if (conn->in.size() - offset < kFrameHeaderSize + header.length) break;
    const uint8_t* payload = conn->in.data() + offset + kFrameHeaderSize;
    offset += kFrameHeaderSize + header.length;
    if (conn->state == ConnState::kAwaitHello) {
      if (header.type != FrameType::kHello) {
        refuse(conn, ErrorCode::kBadType,
               "expected HELLO (type 1) as the first frame, got type " + std::to_string(static_cast<int>(header.type)));
        return false;
      }
      if (!on_hello(conn, payload, header.length)) return false;
      continue;
    }
    // Control connection.
    if (header.type != FrameType::kResultsRequest) {
      refuse(conn, ErrorCode::kBadType,
             "unexpected frame type " + std::to_string(static_cast<int>(header.type)) + " on a control connection");
      return false;
    }
    if (header.length != 0) {
      refuse(conn, ErrorCode::kBadLength, "RESULTS_REQUEST carries no payload, got " + std::to_string(header.length) + " bytes");
      return false;
    }
    if (!reply_results(conn)) return false;
  }
  // Bytes after HELLO belong to the data phase.
  std::vector<uint8_t> rest(conn->in.begin() + static_cast<std::ptrdiff_t>(offset), conn->in.end());
  conn->in.clear();
  switch (conn->state) {
    case ConnState::kAwaitHello:
    case ConnState::kControl:
      conn->in = std::move(rest);
      return true;
    case ConnState::kSink:
      conn->stream->received.fetch_add(rest.size(), std::memory_order_relaxed);
      return true;
    case ConnState::kEcho:
    case ConnState::kEchoOnce: {
      const size_t echo_now = conn->state == ConnState::kEchoOnce
                                  ? std::min<uint64_t>(rest.size(), conn->echo_remaining) : rest.size();
      if (conn->state == ConnState::kEchoOnce) conn->echo_remaining -= echo_now;
      queue_out(conn, rest.data(), echo_now);
      if (conn->state == ConnState::kEchoOnce && conn->echo_remaining == 0) conn->close_after_flush = true;
      return flush(conn);
    }
    default:
      return true;
  }
}

bool ServerWorker::on_hello(Connection* conn, const uint8_t* payload, uint32_t length) {
  if (length != 12) {
    refuse(conn, ErrorCode::kBadLength, "HELLO payload must be 12 bytes, got " + std::to_string(length));
    return false;
  }
  const uint8_t role = payload[0];
  const uint32_t session_id = get_u32(payload + 4);
  const uint32_t argument = get_u32(payload + 8);
  switch (static_cast<Role>(role)) {
    case Role::kControl: {
      conn->session = sessions_->open();
      if (!conn->session) {
        refuse(conn, ErrorCode::kBusy, "too many sessions open (" + std::to_string(SessionTable::kMaxSessions) + "); try again later");
        return false;
      }
      conn->state = ConnState::kControl;
      shared_->sessions.fetch_add(1, std::memory_order_relaxed);
      uint8_t reply[kFrameHeaderSize + 12];
      put_frame_header(reply, FrameType::kSession, 12);
      put_u32(reply + 8, conn->session->id);
      put_u32(reply + 12, kMaxStreams);
      put_u32(reply + 16, kMaxFlows);
      queue_out(conn, reply, sizeof reply);
      return flush(conn);
    }
    case Role::kSink:
    case Role::kSource: {
      conn->session = sessions_->find(session_id);
      if (!conn->session) {
        refuse(conn, ErrorCode::kUnknownSession, "unknown session " + std::to_string(session_id) +
                                                     " (open a control connection first; sessions end when it closes)");
        return false;
      }
      if (argument >= kMaxStreams) {
        refuse(conn, ErrorCode::kBadStream,
               "stream " + std::to_string(argument) + " out of range (max " + std::to_string(kMaxStreams - 1) + ")");
        return false;
      }
      conn->stream = &conn->session->streams[argument];
      conn->stream->state.store(static_cast<uint8_t>(StreamState::kOpen), std::memory_order_relaxed);
      if (static_cast<Role>(role) == Role::kSink) {
        conn->state = ConnState::kSink;
      } else {
        conn->state = ConnState::kSource;
        set_interest(conn, EPOLLIN | EPOLLOUT);
      }
      return true;
    }
    case Role::kEcho:
      conn->state = ConnState::kEcho;
      return true;
    case Role::kEchoOnce:
      if (argument == 0 || argument > kMaxFramePayload) {
        refuse(conn, ErrorCode::kBadLength, "echo-once size must be 1.." + std::to_string(kMaxFramePayload));
        return false;
      }
      conn->state = ConnState::kEchoOnce;
      conn->echo_remaining = argument;
      return true;
  }
  refuse(conn, ErrorCode::kBadRole, "unknown role " + std::to_string(role) + " in HELLO (expected 1..5)");
  return false;
}

bool ServerWorker::reply_results(Connection* conn) {
  Session& session = *conn->session;
  uint32_t streams = 0;
  uint32_t flows = 0;
  for (uint32_t i = 0; i < kMaxStreams; i++) {
    if (session.streams[i].state.load(std::memory_order_acquire) != 0) streams = i + 1;
  }
  for (uint32_t i = 0; i < kMaxFlows; i++) {
    if (session.flows[i].datagrams.load(std::memory_order_relaxed) != 0) flows = i + 1;
  }
  const uint32_t length = 8 + streams * 24 + flows * 32;
  std::vector<uint8_t> frame(kFrameHeaderSize + length, 0);
  put_frame_header(frame.data(), FrameType::kResults, length);
  uint8_t* p = frame.data() + kFrameHeaderSize;
  put_u32(p, streams);
  put_u32(p + 4, flows);
  p += 8;
  for (uint32_t i = 0; i < streams; i++, p += 24) {
    const StreamCount& s = session.streams[i];
    const uint8_t state = s.state.load(std::memory_order_acquire);
    put_u64(p, s.received.load(std::memory_order_relaxed));
    put_u64(p + 8, s.sent.load(std::memory_order_relaxed));
    p[16] = state;
  }
  for (uint32_t i = 0; i < flows; i++, p += 32) {
    const FlowCount& f = session.flows[i];
    put_u64(p, f.datagrams.load(std::memory_order_relaxed));
    put_u64(p + 8, f.bytes.load(std::memory_order_relaxed));
    put_u64(p + 16, f.reordered.load(std::memory_order_relaxed));
    const uint64_t next = f.next_expected.load(std::memory_order_relaxed);
    put_u64(p + 24, next == 0 ? 0 : next - 1);
  }
  queue_out(conn, frame.data(), frame.size());
  return flush(conn);
}

void ServerWorker::refuse(Connection* conn, ErrorCode code, const std::string& why) {
  shared_->protocol_errors.fetch_add(1, std::memory_order_relaxed);
  shared_->add_log(conn->peer + ": protocol error: " + why + "; connection closed");
  const std::string message = "fulcrum bench server: " + why;
  std::vector<uint8_t> frame(kFrameHeaderSize + 2 + message.size());
  put_frame_header(frame.data(), FrameType::kError, static_cast<uint32_t>(2 + message.size()));
  put_u16(frame.data() + kFrameHeaderSize, static_cast<uint16_t>(code));
  std::memcpy(frame.data() + kFrameHeaderSize + 2, message.data(), message.size());
  if (conn->state == ConnState::kControl && conn->session) sessions_->close(conn->session->id);
  conn->session.reset();
  conn->stream = nullptr;
  conn->in.clear();
  conn->out.clear();
  conn->out_offset = 0;
  // Write the ERROR, then FIN, then discard what the peer still sends: closing
  // with unread input would send a reset that can destroy the ERROR frame
  // before the peer reads it.
  conn->state = ConnState::kDraining;
  conn->drain_deadline_ns = now_ns() + kDrainAfterErrorNs;
  queue_out(conn, frame.data(), frame.size());
  if (!flush(conn)) return;
  if (conn->out.empty()) shutdown(conn->fd, SHUT_WR);
}

void ServerWorker::drain(Connection* conn) {
  for (int i = 0; i < kReadsPerEvent; i++) {
    const ssize_t n = recv(conn->fd, scratch_.data(), scratch_.size(), 0);
    if (n > 0) continue;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    close_connection(conn);
    return;
  }
}

void ServerWorker::expire_drains() {
  // Refused connections are rare: look for expired ones at most every 100 ms,
  // not on every wakeup (a connrate run wakes this loop 100k times a second).
  const uint64_t now = now_ns();
  if (now < next_drain_check_ns_) return;
  next_drain_check_ns_ = now + 100'000'000;
  std::vector<Connection*> expired;
  std::vector<Connection*> silent;
  for (auto& [fd, conn] : connections_) {
    if (conn->state == ConnState::kDraining && now >= conn->drain_deadline_ns) expired.push_back(conn.get());
    if (conn->state == ConnState::kAwaitHello && now - conn->accepted_ns >= kHelloTimeoutNs) silent.push_back(conn.get());
  }
  for (Connection* conn : expired) close_connection(conn);
  for (Connection* conn : silent) {
    refuse(conn, ErrorCode::kBadType, "no HELLO within " + std::to_string(kHelloTimeoutNs / 1'000'000'000) + " s");
  }
}

void ServerWorker::read_sink(Connection* conn) {
  for (int i = 0; i < kReadsPerEvent; i++) {
    const ssize_t n = recv(conn->fd, scratch_.data(), scratch_.size(), 0);
    if (n > 0) {
      conn->stream->received.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    // EOF: the client has sent everything; the count is final.
    close_connection(conn);
    return;
  }
}

void ServerWorker::write_source(Connection* conn) {
  for (int i = 0; i < kReadsPerEvent; i++) {
    const ssize_t n = send(conn->fd, scratch_.data(), scratch_.size(), MSG_NOSIGNAL);
    if (n > 0) {
      conn->stream->sent.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    close_connection(conn);  // EPIPE/ECONNRESET: the client went away
    return;
  }
}

void ServerWorker::read_source(Connection* conn) {
  const ssize_t n = recv(conn->fd, scratch_.data(), scratch_.size(), 0);
  if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) return;  // ignore stray input
  // The client's EOF ends the stream: stop writing; what was sent is final.
  // close() sends what is still queued, then FIN.
  close_connection(conn);
}

void ServerWorker::echo(Connection* conn) {
  for (int i = 0; i < kReadsPerEvent && conn->out.empty(); i++) {
    size_t want = scratch_.size();
    if (conn->state == ConnState::kEchoOnce) want = std::min<uint64_t>(want, conn->echo_remaining);
    const ssize_t n = recv(conn->fd, scratch_.data(), want, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
      close_connection(conn);
      return;
    }
    if (conn->state == ConnState::kEchoOnce) {
      conn->echo_remaining -= static_cast<uint64_t>(n);
      if (conn->echo_remaining == 0) conn->close_after_flush = true;
    }
    // Straight from the read buffer; only what the socket does not take now
    // is copied aside (and then reading waits until it is written).
    ssize_t sent = send(conn->fd, scratch_.data(), static_cast<size_t>(n), MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno != EAGAIN && errno != EINTR) {
        close_connection(conn);
        return;
      }
      sent = 0;
    }
    if (sent < n) {
      queue_out(conn, scratch_.data() + sent, static_cast<size_t>(n - sent));
      flush(conn);
      return;
    }
    if (conn->close_after_flush) {
      close_connection(conn);
      return;
    }
    // A short read drained the socket: skip the read that would only say
    // EAGAIN (one syscall less per ping-pong round trip).
    if (static_cast<size_t>(n) < want) return;
  }
}

void ServerWorker::queue_out(Connection* conn, const uint8_t* data, size_t size) {
  conn->out.insert(conn->out.end(), data, data + size);
}

bool ServerWorker::flush(Connection* conn) {
  while (conn->out_offset < conn->out.size()) {
    const ssize_t n = send(conn->fd, conn->out.data() + conn->out_offset, conn->out.size() - conn->out_offset, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        // Wait for room; stop reading meanwhile (echo applies backpressure).
        set_interest(conn, EPOLLOUT);
        return true;
      }
      close_connection(conn);
      return false;
    }
    conn->out_offset += static_cast<size_t>(n);
  }
  const bool was_blocked = !conn->out.empty();
  conn->out.clear();
  conn->out_offset = 0;
  if (conn->close_after_flush) {
    close_connection(conn);
    return false;
  }
  if (conn->state == ConnState::kDraining) {
    shutdown(conn->fd, SHUT_WR);
  }
  if (was_blocked) set_interest(conn, conn->state == ConnState::kSource ? (EPOLLIN | EPOLLOUT) : EPOLLIN);
  return true;
}

void ServerWorker::receive_datagrams() {
  mmsghdr messages[kUdpBatch];
  iovec iovecs[kUdpBatch];
  sockaddr_storage peers[kUdpBatch];
  for (int round = 0; round < 8; round++) {
    for (size_t i = 0; i < kUdpBatch; i++) {
      iovecs[i] = {udp_buffers_.data() + i * kUdpBufferSize, kUdpBufferSize};
      messages[i] = {};
      messages[i].msg_hdr.msg_iov = &iovecs[i];
      messages[i].msg_hdr.msg_iovlen = 1;
      messages[i].msg_hdr.msg_name = &peers[i];
      messages[i].msg_hdr.msg_namelen = sizeof peers[i];
    }
    const int n = recvmmsg(udp_fd_, messages, kUdpBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) return;  // EAGAIN: drained
    shared_->datagrams.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    mmsghdr replies[kUdpBatch];
    int reply_count = 0;
    for (int i = 0; i < n; i++) {
      const uint8_t* data = udp_buffers_.data() + static_cast<size_t>(i) * kUdpBufferSize;
      const size_t size = messages[i].msg_len;
      if (size < kDatagramHeaderSize || data[0] != 'F' || data[1] != 'U' || data[2] != kProtocolVersion) {
        shared_->malformed_datagrams.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      if (data[3] == static_cast<uint8_t>(DatagramKind::kEchoRequest)) {
        replies[reply_count] = {};
        replies[reply_count].msg_hdr.msg_iov = &iovecs[i];
        iovecs[i].iov_len = size;
        replies[reply_count].msg_hdr.msg_iovlen = 1;
        replies[reply_count].msg_hdr.msg_name = &peers[i];
        replies[reply_count].msg_hdr.msg_namelen = messages[i].msg_hdr.msg_namelen;
        reply_count++;
      } else if (data[3] == static_cast<uint8_t>(DatagramKind::kData)) {
        count_datagram(data, size);
      } else {
        shared_->malformed_datagrams.fetch_add(1, std::memory_order_relaxed);
      }
    }
    // Replies that do not fit the socket buffer are dropped, as a loaded
    // server would; the client counts them as lost.
    for (int sent = 0; sent < reply_count;) {
      const int m = sendmmsg(udp_fd_, replies + sent, static_cast<unsigned>(reply_count - sent), MSG_DONTWAIT);
      if (m <= 0) break;
      sent += m;
    }
    if (static_cast<size_t>(n) < kUdpBatch) return;
  }
}

void ServerWorker::count_datagram(const uint8_t* data, size_t size) {
  const uint32_t session_id = get_u32(data + 4);
  const uint32_t flow = get_u32(data + 8);
  const uint64_t seq = get_u64(data + 16);
  if (!cached_session_ || cached_session_->id != session_id) cached_session_ = sessions_->find(session_id);
  if (!cached_session_ || flow >= kMaxFlows) {
    shared_->unknown_session_datagrams.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  FlowCount& f = cached_session_->flows[flow];
  f.datagrams.fetch_add(1, std::memory_order_relaxed);
  f.bytes.fetch_add(size, std::memory_order_relaxed);
  // One worker normally owns a flow (the kernel's reuseport hash), but a
  // compare-and-swap keeps the maximum right if two ever share it.
  uint64_t next = f.next_expected.load(std::memory_order_relaxed);
  for (;;) {
    if (seq + 1 <= next) {
      f.reordered.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (f.next_expected.compare_exchange_weak(next, seq + 1, std::memory_order_relaxed)) return;
  }
}

Server::Server() : shared_(std::make_unique<Shared>()), sessions_(std::make_unique<SessionTable>()) {}

Server::~Server() { stop(); }

int Server::create(const ServerConfig& config, std::unique_ptr<Server>* out) {
  Endpoint endpoint;
  int result = make_endpoint(config.host, 0, &endpoint);
  if (result < 0) return result;
  if (config.port < 0 || config.port > 65535 || config.threads < 1 || config.threads > 64) return -EINVAL;
  // With port 0 the first worker's TCP port may be taken for UDP by someone
  // else: retry a few times with a new port.
  for (int attempt = 0; attempt < 8; attempt++) {
    std::unique_ptr<Server> server(new Server());
    int port = config.port;
    result = 0;
    for (int i = 0; i < config.threads && result == 0; i++) {
      auto worker = std::make_unique<ServerWorker>(server->shared_.get(), server->sessions_.get());
      result = worker->bind(endpoint, &port, i == 0);
      server->workers_.push_back(std::move(worker));
    }
    if (result == -EADDRINUSE && config.port == 0) continue;
    if (result < 0) return result;
    server->port_ = port;
    for (auto& worker : server->workers_) worker->start();
    *out = std::move(server);
    return 0;
  }
  return result;
}

void Server::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& worker : workers_) worker->stop();
  workers_.clear();
}

ServerStats Server::stats() const {
  ServerStats s;
  s.sessions = shared_->sessions.load(std::memory_order_relaxed);
  s.connections = shared_->connections.load(std::memory_order_relaxed);
  s.protocol_errors = shared_->protocol_errors.load(std::memory_order_relaxed);
  s.datagrams = shared_->datagrams.load(std::memory_order_relaxed);
  s.malformed_datagrams = shared_->malformed_datagrams.load(std::memory_order_relaxed);
  s.unknown_session_datagrams = shared_->unknown_session_datagrams.load(std::memory_order_relaxed);
  return s;
}

std::vector<std::string> Server::take_log() {
  std::lock_guard lock(shared_->log_mutex);
  std::vector<std::string> lines(shared_->log.begin(), shared_->log.end());
  shared_->log.clear();
  return lines;
}

}  // namespace fulcrum::bench
