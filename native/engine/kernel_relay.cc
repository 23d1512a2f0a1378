#include "kernel_relay.h"

#include <cerrno>
#include <cstring>
#include <mutex>

#include <linux/bpf.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <linux/tcp.h>  // struct tcp_info with tcpi_bytes_acked (glibc's is older)
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "../bpf/sockmap_verdict.insns.h"

namespace fulcrum {
namespace {

// 4096 bulk reports between two reads by the worker: more than can turn
// bulk in one event-loop round.
constexpr uint32_t kEventRingBytes = 64 * 1024;

uint64_t socket_cookie(int fd) {
  uint64_t cookie = 0;
  socklen_t length = sizeof cookie;
  if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &length) < 0) return 0;
  return cookie;
}

// What socket `fd` has been given to send (tcp_info's bytes_acked + SIOCOUTQ)
// and whether it can still take more (ESTABLISHED or CLOSE_WAIT). False when
// either cannot be read.
bool read_send_side(int fd, uint64_t* written, bool* open) {
  tcp_info info{};
  socklen_t length = sizeof info;
  int queued = 0;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) < 0 || ioctl(fd, SIOCOUTQ, &queued) < 0) return false;
  *written = info.tcpi_bytes_acked + static_cast<uint64_t>(queued);
  *open = info.tcpi_state == BPF_TCP_ESTABLISHED || info.tcpi_state == BPF_TCP_CLOSE_WAIT;
  return true;
}

// Bytes a socket has been given to send; 0 when it cannot be read.
uint64_t tcp_bytes_written(int fd) {
  uint64_t written = 0;
  bool open = false;
  return read_send_side(fd, &written, &open) ? written : 0;
}

KernelRelayFallback fallback_for(int error) {
  switch (error) {
    case EOPNOTSUPP:
      return KernelRelayFallback::kNotEstablished;
    case E2BIG:
    case ENOSPC:
    case ENOMEM:
      return KernelRelayFallback::kMapFull;
    default:
      return KernelRelayFallback::kInsertFailed;
  }
}

}  // namespace


const KernelRelaySupport& kernel_relay_support() {
  static KernelRelaySupport support;
  static std::once_flag probed;
  std::call_once(probed, [] {
    std::string error;
    support.available = KernelRelay::create(2, &error) != nullptr;
    support.reason = support.available ? "" : error;
  });
  return support;
}

std::unique_ptr<KernelRelay> KernelRelay::create(uint32_t capacity, std::string* error) {
  std::unique_ptr<KernelRelay> relay(new KernelRelay());
  relay->capacity_ = capacity;
  const uint32_t sockets = capacity * 2;
  relay->peers_ = bpf::Fd(bpf::create_map({"fulcrum_peers", BPF_MAP_TYPE_SOCKHASH, 8, 4, sockets}, error));
  if (!relay->peers_.valid()) return nullptr;
  relay->active_ = bpf::Fd(bpf::create_map({"fulcrum_active", BPF_MAP_TYPE_SOCKHASH, 8, 4, sockets}, error));
  if (!relay->active_.valid()) return nullptr;
  relay->sockets_ = bpf::Fd(bpf::create_map(
      {"fulcrum_relayed", BPF_MAP_TYPE_HASH, 8, sizeof(KernelRelaySocket), sockets, BPF_F_NO_PREALLOC}, error));
  if (!relay->sockets_.valid()) return nullptr;
  relay->events_ = bpf::Fd(bpf::create_map({"fulcrum_bulk", BPF_MAP_TYPE_RINGBUF, 0, 0, kEventRingBytes}, error));
  if (!relay->events_.valid()) return nullptr;
  if (relay->event_ring_.open(relay->events_.get(), kEventRingBytes, error) < 0) return nullptr;

  KernelRelay& r = *relay;
  const auto map_fd = [&r](std::string_view name) {
    if (name == "relay_peers") return r.peers_.get();
    if (name == "relay_sockets") return r.sockets_.get();
    if (name == "relay_bulk_events") return r.events_.get();
    return -1;
  };
  relay->verdict_ = bpf::Fd(bpf::load_program(bpf_generated::kRelayVerdict, BPF_PROG_TYPE_SK_SKB,
                                               BPF_SK_SKB_STREAM_VERDICT, map_fd, error));
  if (!relay->verdict_.valid()) return nullptr;
  // Attached before any socket goes in: attachment only applies to sockets
  // inserted after it.
  const int attached = bpf::attach_program(relay->active_.get(), relay->verdict_.get(), BPF_SK_SKB_STREAM_VERDICT);
  if (attached < 0) {
    if (error) *error = "attaching the relay's verdict program: " + bpf::describe_errno(-attached);
    return nullptr;
  }
  return relay;
}

KernelRelay::~KernelRelay() = default;

bool KernelRelay::insert(int client_fd, int backend_fd, bool watch_bulk, KernelRelayPair& pair,
                         KernelRelayFallback* why) {
  pair.fd[0] = client_fd;
  pair.fd[1] = backend_fd;
  for (int side = 0; side < 2; side++) {
    pair.cookie[side] = socket_cookie(pair.fd[side]);
    pair.written_base[side] = tcp_bytes_written(pair.fd[side]);
    pair.relayed[side] = 0;
  }
  if (pair.cookie[0] == 0 || pair.cookie[1] == 0) {
    *why = KernelRelayFallback::kInsertFailed;
    return false;
  }
  KernelRelaySocket record;
  record.flags = watch_bulk ? kKernelRelayWatchBulk : 0;
  int error = 0;
  int step = 0;
  // The order is the invariant: counters, then every redirect target, then
  // the verdict. The client goes first in each map: it is the side whose
  // FIN may already be here (CLOSE_WAIT cannot be inserted).
  const auto put = [&](int map, int side, const void* value) {
    if (error != 0) return;
    error = -bpf::map_update(map, &pair.cookie[side], value, BPF_NOEXIST);
    if (error == 0) step++;
  };
  put(sockets_.get(), 0, &record);
  put(sockets_.get(), 1, &record);
  put(peers_.get(), 1, &pair.fd[0]);  // bytes from the backend go to the client
  put(peers_.get(), 0, &pair.fd[1]);
  put(active_.get(), 0, &pair.fd[0]);
  put(active_.get(), 1, &pair.fd[1]);
  if (error != 0) {
    // Undo in reverse; a step that did not happen is a harmless ENOENT.
    if (step > 4) bpf::map_delete(active_.get(), &pair.cookie[0]);
    if (step > 3) bpf::map_delete(peers_.get(), &pair.cookie[0]);
    if (step > 2) bpf::map_delete(peers_.get(), &pair.cookie[1]);
    if (step > 1) bpf::map_delete(sockets_.get(), &pair.cookie[1]);
    if (step > 0) bpf::map_delete(sockets_.get(), &pair.cookie[0]);
    *why = fallback_for(error);
    return false;
  }
  pair.in_maps = true;
  pair.verdict_running = true;
  // Bytes that arrived before the verdict was attached wait in the receive
  // queue; setting SO_RCVLOWAT runs the socket's data_ready, which passes
  // them through the verdict in order.
  const int one = 1;
  setsockopt(pair.fd[0], SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
  setsockopt(pair.fd[1], SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
  return true;
}

void KernelRelay::stop_verdict(KernelRelayPair& pair) {
  if (!pair.verdict_running) return;
  bpf::map_delete(active_.get(), &pair.cookie[0]);
  bpf::map_delete(active_.get(), &pair.cookie[1]);
  pair.verdict_running = false;
}

bool KernelRelay::read_relayed(KernelRelayPair& pair) {
  bool changed = false;
  for (int side = 0; side < 2; side++) {
    KernelRelaySocket record;
    if (bpf::map_lookup(sockets_.get(), &pair.cookie[side], &record) == 0 && record.bytes != pair.relayed[side]) {
      pair.relayed[side] = record.bytes;
      changed = true;
    }
  }
  return changed;
}

bool KernelRelay::delivered(const KernelRelayPair& pair, int from) const {
  const int to = 1 - from;
  uint64_t written = 0;
  bool open = false;
  // A socket that was reset or closed takes nothing more: what the kernel
  // still holds for it is lost with it, as in user space.
  if (!read_send_side(pair.fd[to], &written, &open) || !open) return true;
  return written - pair.written_base[to] >= pair.relayed[from];
}

void KernelRelay::remove(KernelRelayPair& pair) {
  if (pair.verdict_running) stop_verdict(pair);
  if (!pair.in_maps) return;
  for (int side = 0; side < 2; side++) {
    bpf::map_delete(peers_.get(), &pair.cookie[side]);
    bpf::map_delete(sockets_.get(), &pair.cookie[side]);
  }
  pair.in_maps = false;
}

void KernelRelay::take_bulk_reports(const std::function<void(uint64_t cookie)>& on_bulk) {
  event_ring_.consume([&](const void* data, uint32_t size) {
    if (size < sizeof(uint64_t)) return;
    uint64_t cookie;
    memcpy(&cookie, data, sizeof cookie);
    on_bulk(cookie);
  });
}

}  // namespace fulcrum
