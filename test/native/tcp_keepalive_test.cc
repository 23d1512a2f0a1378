// tcp_keepalive: reads the options back, with getsockopt, from the engine's
// own two sockets of a relayed connection (they are in this process): the
// client's, which inherits them from its listener, and the backend's, set in
// connect_next_backend(). Then off: neither socket has SO_KEEPALIVE.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "engine/engine.h"

void check(bool ok, const std::string& what);

namespace {

sockaddr_in loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

int listening_socket(int* port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = loopback(0);
  socklen_t length = sizeof address;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0 || listen(fd, 8) < 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) < 0) {
    return -1;
  }
  *port = ntohs(address.sin_port);
  return fd;
}

bool same(const sockaddr_in& a, const sockaddr_in& b) {
  return a.sin_family == b.sin_family && a.sin_port == b.sin_port && a.sin_addr.s_addr == b.sin_addr.s_addr;
}

// The fd of this process whose local (or, with peer, remote) address is `address`.
int find_socket(const sockaddr_in& address, bool peer, int except) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (dirent* entry = readdir(dir)) {
    const int fd = std::atoi(entry->d_name);
    if (fd <= 2 || fd == except || fd == dirfd(dir)) continue;
    sockaddr_in name{};
    socklen_t length = sizeof name;
    const int result = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&name), &length)
                            : getsockname(fd, reinterpret_cast<sockaddr*>(&name), &length);
    if (result == 0 && length == sizeof name && same(name, address)) {
      found = fd;
      break;
    }
  }
  closedir(dir);
  return found;
}

int option(int fd, int level, int name) {
  int value = -1;
  socklen_t length = sizeof value;
  if (getsockopt(fd, level, name, &value, &length) < 0) return -1;
  return value;
}

struct Sides {
  int client = -1;   // the engine's socket to the client
  int backend = -1;  // the engine's socket to the backend
};

// One connection through the engine: the test's client and the backend's
// accepted socket are returned for closing; the engine's two are found.
Sides relay_one(int service_port, int backend_listener, int* client_out, int* accepted_out) {
  Sides sides;
  int client = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in target = loopback(service_port);
  if (connect(client, reinterpret_cast<sockaddr*>(&target), sizeof target) < 0) return sides;
  *client_out = client;
  // accept() returns once the engine's backend connect completed, and the
  // engine accepted the client before it connected.
  sockaddr_in engine_side{};
  socklen_t length = sizeof engine_side;
  const int accepted = accept(backend_listener, reinterpret_cast<sockaddr*>(&engine_side), &length);
  if (accepted < 0) return sides;
  *accepted_out = accepted;
  sockaddr_in client_local{};
  length = sizeof client_local;
  getsockname(client, reinterpret_cast<sockaddr*>(&client_local), &length);
  sides.client = find_socket(client_local, true, client);
  sides.backend = find_socket(engine_side, false, accepted);
  return sides;
}

}  // namespace

void run_tcp_keepalive_tests() {
  std::unique_ptr<fulcrum::Engine> engine;
  fulcrum::EngineOptions options;
  options.workers = 1;
  if (fulcrum::Engine::create(std::move(options), &engine) != 0) return check(false, "engine starts");
  int backend_port = 0;
  const int backend_listener = listening_socket(&backend_port);
  int service_port = 0;
  close(listening_socket(&service_port));  // free again; the engine takes it

  fulcrum::ServiceSpec spec;
  spec.name = "db";
  spec.slot = 1;
  fulcrum::parse_socket_address("127.0.0.1", service_port, &spec.listen);
  fulcrum::BackendSpec backend;
  backend.slot = 1;
  fulcrum::parse_socket_address("127.0.0.1", backend_port, &backend.address);
  spec.backends.push_back(backend);
  spec.tcp_keepalive = fulcrum::TcpKeepaliveSpec{true, 7000, 2500, 4};  // 2.5s: rounded up to 3s

  fulcrum::ApplyFailure failure;
  uint64_t generation = 0;
  check(engine->apply({spec}, &failure, &generation) == 0, "a service with tcp_keepalive applies");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the worker takes its listener
  int client = -1, accepted = -1;
  Sides sides = relay_one(service_port, backend_listener, &client, &accepted);
  check(sides.client >= 0 && sides.backend >= 0, "the engine's two sockets are found");
  for (const auto& [fd, which] : {std::pair{sides.client, "client side"}, std::pair{sides.backend, "backend side"}}) {
    const std::string side = which;
    check(option(fd, SOL_SOCKET, SO_KEEPALIVE) == 1, side + ": SO_KEEPALIVE on");
    check(option(fd, IPPROTO_TCP, TCP_KEEPIDLE) == 7, side + ": TCP_KEEPIDLE 7s");
    check(option(fd, IPPROTO_TCP, TCP_KEEPINTVL) == 3, side + ": TCP_KEEPINTVL 3s (2.5s rounded up)");
    check(option(fd, IPPROTO_TCP, TCP_KEEPCNT) == 4, side + ": TCP_KEEPCNT 4");
    check(option(fd, IPPROTO_TCP, TCP_USER_TIMEOUT) == 0, side + ": no TCP_USER_TIMEOUT (it would cut a client that pauses reading)");
  }
  close(client);
  close(accepted);

  // Off by reload, on the listener that stays: new connections have none.
  spec.tcp_keepalive.enabled = false;
  check(engine->apply({spec}, &failure, &generation) == 0, "tcp_keepalive: off applies");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  client = accepted = -1;
  sides = relay_one(service_port, backend_listener, &client, &accepted);
  check(sides.client >= 0 && sides.backend >= 0, "the engine's two sockets are found again");
  check(option(sides.client, SOL_SOCKET, SO_KEEPALIVE) == 0, "off: the client side has no SO_KEEPALIVE");
  check(option(sides.backend, SOL_SOCKET, SO_KEEPALIVE) == 0, "off: the backend side has no SO_KEEPALIVE");
  check(option(sides.client, IPPROTO_TCP, TCP_USER_TIMEOUT) == 0, "off: nor TCP_USER_TIMEOUT");
  close(client);
  close(accepted);
  engine->stop();
  close(backend_listener);
}
