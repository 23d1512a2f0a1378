// kernel_relay: the maps and the program on real loopback TCP connections,
// without the engine. A is the outside client, a/b the proxy's two sockets,
// B the outside backend. Skipped (reported) where the kernel relay is not
// available to this process (no CAP_BPF, no sockmap).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "engine/kernel_relay.h"

void check(bool ok, const std::string& what);

namespace {

using fulcrum::KernelRelay;
using fulcrum::KernelRelayFallback;
using fulcrum::KernelRelayPair;

struct Chain {
  int outside_client = -1, proxy_client = -1, proxy_backend = -1, outside_backend = -1;
  ~Chain() {
    for (int fd : {outside_client, proxy_client, proxy_backend, outside_backend}) {
      if (fd >= 0) close(fd);
    }
  }
};

int connected_pair(int* accepted) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address);
  listen(listener, 4);
  getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  *accepted = accept(listener, nullptr, nullptr);
  close(listener);
  return fd;
}

void make_chain(Chain& chain) {
  chain.outside_client = connected_pair(&chain.proxy_client);
  chain.proxy_backend = connected_pair(&chain.outside_backend);
}

// Reads exactly n bytes within 2 s.
std::string read_exactly(int fd, size_t n) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    char buffer[65536];
    const ssize_t got = recv(fd, buffer, std::min(sizeof buffer, n - out.size()), MSG_DONTWAIT);
    if (got <= 0) break;
    out.append(buffer, static_cast<size_t>(got));
  }
  return out;
}

bool wait_until(const std::function<bool()>& condition) {
  for (int i = 0; i < 200; i++) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

void test_relays_both_ways_and_leaves_exactly(KernelRelay& relay) {
  Chain chain;
  make_chain(chain);
  // Sent before the sockets go in: the SO_RCVLOWAT kick must pass it on.
  send(chain.outside_client, "early", 5, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  KernelRelayPair pair;
  KernelRelayFallback why{};
  check(relay.insert(chain.proxy_client, chain.proxy_backend, false, pair, &why), "an established pair goes in");
  check(read_exactly(chain.outside_backend, 5) == "early", "bytes received before insertion are relayed, in order");
  send(chain.outside_client, "GET k\r\n", 7, 0);
  check(read_exactly(chain.outside_backend, 7) == "GET k\r\n", "a request crosses in the kernel");
  std::string reply(3000, 'r');
  send(chain.outside_backend, reply.data(), reply.size(), 0);
  check(read_exactly(chain.outside_client, reply.size()) == reply, "a reply crosses back, byte-exact");
  check(wait_until([&] { relay.read_relayed(pair); return pair.relayed[0] == 12 && pair.relayed[1] == 3000; }),
        "the program counts payload bytes each way (12 up, 3000 down)");
  // Leaving: the verdict stops, later bytes wait in the proxy's socket.
  relay.stop_verdict(pair);
  check(wait_until([&] { return relay.delivered(pair, 0) && relay.delivered(pair, 1); }),
        "every relayed byte reached the other socket");
  relay.remove(pair);
  send(chain.outside_client, "after", 5, 0);
  check(read_exactly(chain.proxy_client, 5) == "after", "after leaving, bytes wait for user space in the socket");
}

void test_close_wait_is_refused(KernelRelay& relay) {
  Chain chain;
  make_chain(chain);
  send(chain.outside_client, "data", 4, 0);
  shutdown(chain.outside_client, SHUT_WR);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  KernelRelayPair pair;
  KernelRelayFallback why{};
  check(!relay.insert(chain.proxy_client, chain.proxy_backend, false, pair, &why) &&
            why == KernelRelayFallback::kNotEstablished,
        "a client whose FIN is here (CLOSE_WAIT) stays in user space");
  check(read_exactly(chain.proxy_client, 4) == "data", "its bytes are still in its socket for user space");
}

void test_bulk_is_reported(KernelRelay& relay) {
  Chain chain;
  make_chain(chain);
  KernelRelayPair pair;
  KernelRelayFallback why{};
  check(relay.insert(chain.proxy_client, chain.proxy_backend, true, pair, &why), "a watched pair goes in");
  std::thread reader([&] { read_exactly(chain.outside_backend, 4 << 20); });
  std::vector<char> block(4 << 20, 'x');
  size_t sent = 0;
  while (sent < block.size()) {
    const ssize_t n = send(chain.outside_client, block.data() + sent, block.size() - sent, 0);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  reader.join();
  std::vector<uint64_t> reports;
  wait_until([&] {
    relay.take_bulk_reports([&](uint64_t cookie) { reports.push_back(cookie); });
    return !reports.empty();
  });
  check(reports.size() == 1 && reports[0] == pair.cookie[0], "4 MiB in one go is reported once, for the client's socket");
  relay.remove(pair);
}

void test_map_full(const std::string&) {
  std::string error;
  auto small = KernelRelay::create(1, &error);
  check(small != nullptr, "a relay for one connection: " + error);
  if (!small) return;
  Chain first, second;
  make_chain(first);
  make_chain(second);
  KernelRelayPair a, b;
  KernelRelayFallback why{};
  check(small->insert(first.proxy_client, first.proxy_backend, false, a, &why), "the first connection fits");
  check(!small->insert(second.proxy_client, second.proxy_backend, false, b, &why) &&
            why == KernelRelayFallback::kMapFull,
        "the second is refused as map full");
}

}  // namespace

void run_kernel_relay_tests() {
  const auto& support = fulcrum::kernel_relay_support();
  if (!support.available) {
    std::printf("kernel relay tests skipped: %s\n", support.reason.c_str());
    return;
  }
  std::string error;
  auto relay = KernelRelay::create(64, &error);
  check(relay != nullptr, "a kernel relay for 64 connections: " + error);
  if (!relay) return;
  test_relays_both_ways_and_leaves_exactly(*relay);
  test_close_wait_is_refused(*relay);
  test_bulk_is_reported(*relay);
  test_map_full(error);
}
