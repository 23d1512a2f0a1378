#include "udp_relay.h"

#include <netinet/udp.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "clock.h"
#include "flow_hash.h"
#include "worker.h"

namespace fulcrum {

namespace {

// recvmmsg rounds per listener readiness: a flood on one listener still
// lets replies and other listeners move (the listener is level-triggered, so
// what is left is reported again on the next wait).
constexpr int kRoundsPerEvent = 4;
// UDP GSO: only datagrams small enough for any path MTU (a larger segment
// than the route's MTU is refused with EINVAL), at most 64 of them
// (UDP_MAX_SEGMENTS on older kernels) and 64000 bytes in all.
constexpr size_t kGsoMaxSegment = 1200;
constexpr unsigned kGsoMaxSegments = 64;
constexpr size_t kGsoMaxBytes = 64000;

bool same_address(const SocketAddress& a, const SocketAddress& b) {
  return a.length == b.length && std::memcmp(&a.storage, &b.storage, a.length) == 0;
}

}  // namespace

std::vector<ListenerBinding> take_udp_bindings(std::vector<ListenerBinding>& bindings) {
  std::vector<ListenerBinding> udp;
  auto is_udp = [](const ListenerBinding& b) { return b.service->spec().protocol == Protocol::kUdp; };
  for (ListenerBinding& binding : bindings) {
    if (is_udp(binding)) udp.push_back(std::move(binding));
  }
  std::erase_if(bindings, [](const ListenerBinding& b) { return !b.service; });
  return udp;
}

UdpBatch::UdpBatch() : data(new uint8_t[static_cast<size_t>(kSize) * kSlotBytes]) {
  for (unsigned i = 0; i < kSize; i++) {
    in_iov[i] = iovec{slot(i), kSlotBytes};
    out_iov[i] = iovec{slot(i), 0};
    in[i] = mmsghdr{};
    entry[i] = mmsghdr{};
  }
}

// ---------------------------------------------------------------- UdpRelay

UdpRelay::UdpRelay(UdpRelaySet& set, int fd, std::shared_ptr<const Service> service)
    : set_(set),
      worker_(set.worker()),
      handle_{IoHandle::Kind::kUdpListener, this},
      fd_(fd),
      wildcard_(is_wildcard_address(service->spec().listen)),
      listen_port_(socket_port(service->spec().listen)),
      service_(std::move(service)) {}

UdpRelay::~UdpRelay() {
  // close_all() has run (UdpRelaySet only drops relays after it).
  if (fd_ >= 0) close(fd_);
}

void UdpRelay::on_readable() {
  set_.flush_replies();  // they hold slots this call receives into
  UdpBatch& b = set_.batch();
  const bool wildcard = wildcard_;
  for (int round = 0; round < kRoundsPerEvent && fd_ >= 0; round++) {
    for (unsigned i = 0; i < UdpBatch::kSize; i++) {
      msghdr& m = b.in[i].msg_hdr;
      m = msghdr{};
      m.msg_name = &b.names[i];
      m.msg_namelen = sizeof b.names[i];
      m.msg_iov = &b.in_iov[i];
      m.msg_iovlen = 1;
      if (wildcard) {
        m.msg_control = b.in_control[i];
        m.msg_controllen = kPacketInfoControlBytes;
      }
    }
    const int received = recvmmsg(fd_, b.in, UdpBatch::kSize, MSG_DONTWAIT, nullptr);
    if (received <= 0) {
      // EAGAIN: drained. EINTR: the next wait reports it again. Anything else
      // (ENOMEM...) is transient for an unconnected socket: try on the next event.
      return;
    }
    const uint32_t service_slot = service_->spec().slot;
    unsigned i = 0;
    const unsigned count = static_cast<unsigned>(received);
    while (i < count) {
      const msghdr& m = b.in[i].msg_hdr;
      if ((m.msg_flags & MSG_TRUNC) != 0) {
        worker_.counters().add_udp_service(service_slot, kDatagramsDropped, 1);
        i++;
        continue;
      }
      SocketAddress local = service_->spec().listen;
      if (wildcard) read_packet_destination(m, listen_port_, &local);
      const FlowKey key = make_flow_key(b.names[i], local.storage);
      const uint64_t hash = hash_five_tuple(b.names[i], local.storage, IPPROTO_UDP);
      // The run of datagrams of the same flow in this batch goes out together
      // (one sendmmsg, and one UDP GSO send per run of equal sizes).
      unsigned end = i + 1;
      while (end < count && (b.in[end].msg_hdr.msg_flags & MSG_TRUNC) == 0) {
        SocketAddress next_local = service_->spec().listen;
        if (wildcard) read_packet_destination(b.in[end].msg_hdr, listen_port_, &next_local);
        if (!same_address(next_local, local) || !(make_flow_key(b.names[end], next_local.storage) == key)) break;
        end++;
      }
      unsigned allowed = end - i;
      UdpFlow* flow = flow_for(b.names[i], local, key, hash, &allowed);
      if (flow != nullptr && allowed > 0) {
        for (unsigned k = i; k < i + allowed; k++) b.out_iov[k] = iovec{b.slot(k), b.in[k].msg_len};
        forward_to_backend(flow, i, allowed);
      }
      i = end;
    }
    if (count < UdpBatch::kSize) return;  // drained
  }
}

UdpFlow* UdpRelay::flow_for(const sockaddr_storage& client, const SocketAddress& local, const FlowKey& key,
                            uint64_t hash, unsigned* count) {
  const uint32_t service_slot = service_->spec().slot;
  const unsigned run = *count;
  UdpFlow* flow = table_.find(key, hash);
  if (flow == nullptr) {
    // A new flow: the ACL and client limits decide before any backend is touched.
    if (service_->spec().acl && !service_->spec().acl->admits(client)) {
      worker_.refuse_client(service_slot, kDenied, client, run);
      return nullptr;
    }
    ClientLimitTable::Entry* entry = nullptr;
    if (!admit_new_flow(client, count, &entry)) return nullptr;
    flow = create_flow(client, local, key, hash);
    if (flow == nullptr) {
      if (entry != nullptr) service_->limits()->release(entry, worker_.now_ms());
      worker_.counters().add_udp_service(service_slot, kDatagramsDropped, run);
      return nullptr;
    }
    flow->limit_entry = entry;
    if (entry != nullptr) flow->limit_table = service_->limits_shared();
  } else {
    if (flow->service != service_ && service_->spec().acl && !service_->spec().acl->admits(client)) {
      // A reload's new ACL applies to open flows too, on their next datagram.
      close_flow(flow, kUdpCounterCount, Termination::kDenied);
      worker_.refuse_client(service_slot, kDenied, client, run);
      return nullptr;
    }
    if (!ensure_backend(flow)) {
      worker_.counters().add_udp_service(service_slot, kDatagramsDropped, run);
      return nullptr;
    }
    if (flow->limit_entry != nullptr) {
      *count = flow->limit_table->take(flow->limit_entry, run, service_->spec().limits, worker_.now_ms());
    }
  }
  if (*count < run) worker_.refuse_client(service_slot, kOverRate, client, run - *count);
  return flow;
}

bool UdpRelay::admit_new_flow(const sockaddr_storage& client, unsigned* count, ClientLimitTable::Entry** entry) {
  *entry = nullptr;
  ClientLimitTable* limits = service_->limits();
  if (limits == nullptr) return true;
  const uint32_t service_slot = service_->spec().slot;
  const uint64_t now = worker_.now_ms();
  *entry = limits->hold(client, service_->spec().limits, now);
  if (*entry == nullptr) {
    worker_.counters().add_admission(service_slot, kUntracked, 1);
    return true;
  }
  const unsigned run = *count;
  *count = limits->take(*entry, run, service_->spec().limits, now);
  if (*count > 0) return true;
  // Not even the first datagram may go: no flow (and no socket) is made for it.
  limits->release(*entry, now);
  *entry = nullptr;
  worker_.refuse_client(service_slot, kOverRate, client, run);
  return false;
}

void UdpRelay::release_limit(UdpFlow* flow) {
  if (flow->limit_entry == nullptr) return;
  flow->limit_table->release(flow->limit_entry, worker_.now_ms());
  flow->limit_entry = nullptr;
  flow->limit_table.reset();
}

UdpFlow* UdpRelay::create_flow(const sockaddr_storage& client, const SocketAddress& local, const FlowKey& key,
                               uint64_t hash) {
  const ServiceSpec& spec = service_->spec();
  std::atomic<int32_t>& flows = service_->shared().udp_flows;
  // Take a place first, so max_flows holds across workers; when none is
  // left, make one by evicting this table's longest idle flow (the kernel
  // keeps each client on one worker, so each worker evicts its own).
  bool placed = false;
  for (int attempt = 0; attempt < 2 && !placed; attempt++) {
    if (flows.fetch_add(1, std::memory_order_relaxed) < static_cast<int32_t>(spec.udp.max_flows)) {
      placed = true;
      break;
    }
    flows.fetch_sub(1, std::memory_order_relaxed);
    UdpFlow* victim = table_.longest_idle();
    if (victim == nullptr) break;
    close_flow(victim, kFlowsEvicted, Termination::kUdpEvicted);
  }
  if (!placed) {
    worker_.counters().add_service(spec.slot, kFailed, 1);
    return nullptr;
  }
  auto* flow = new UdpFlow(this, key, hash);
  flow->created_us = monotonic_us();
  flow->client.storage = client;
  flow->client.length = client.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  flow->local = local;
  flow->service = service_;
  if (!assign_backend(flow, -1)) {
    flows.fetch_sub(1, std::memory_order_relaxed);
    worker_.counters().add_service(spec.slot, kFailed, 1);
    delete flow;
    return nullptr;
  }
  table_.insert(flow);
  worker_.counters().add_service(spec.slot, kAccepted, 1);
  worker_.counters().add_service(spec.slot, kActive, 1);
  flow->last_active_ms = worker_.now_ms();
  worker_.timers().arm(flow, worker_.now_ms(), spec.idle_timeout_ms);
  return flow;
}

bool UdpRelay::ensure_backend(UdpFlow* flow) {
  const bool had_backend = flow->fd >= 0;
  if (flow->service != service_) {
    // A reload: keep the backend if the new definition still has its slot.
    int kept = -1;
    const auto& backends = service_->spec().backends;
    for (size_t i = 0; i < backends.size(); i++) {
      if (backends[i].slot == flow->backend_slot) kept = static_cast<int>(i);
    }
    if (kept < 0 || flow->fd < 0) {
      release_backend(flow);  // through the snapshot it was picked from
    } else {
      flow->backend_index = kept;
    }
    flow->service = service_;
    // A client table that was replaced (or dropped) by the reload: move over.
    if (flow->limit_table.get() != service_->limits()) {
      release_limit(flow);
      if (ClientLimitTable* limits = service_->limits()) {
        flow->limit_entry = limits->hold(flow->client.storage, service_->spec().limits, worker_.now_ms());
        if (flow->limit_entry != nullptr) flow->limit_table = service_->limits_shared();
      }
    }
  }
  const BackendTable& table = service_->backend_table();
  if (flow->fd >= 0 && !flow->refused && table.state(flow->backend_slot) != BackendState::kDown) return true;
  // Moves: down (health checks), refused (ICMP) or gone. A drained or
  // maintained backend keeps its flows, as TCP keeps its connections.
  const int exclude = flow->refused ? flow->backend_index : -1;
  release_backend(flow);
  if (!assign_backend(flow, exclude)) {
    worker_.counters().add_service(service_->spec().slot, kFailed, 1);
    close_flow(flow, kUdpCounterCount, Termination::kUdpMoved);
    return false;
  }
  if (had_backend) worker_.counters().add_udp_service(service_->spec().slot, kFlowsMoved, 1);
  return true;
}

bool UdpRelay::assign_backend(UdpFlow* flow, int exclude) {
  const Service& service = *flow->service;
  ClientKey client_key;
  if (service.needs_client_key()) {
    client_key.flow_hash = flow->hash;
    client_key.source_hash = hash_source(flow->client.storage);
  }
  const uint32_t tried = exclude >= 0 ? static_cast<uint32_t>(exclude) : 0;
  const int index = service.pick(client_key, &tried, exclude >= 0 ? 1 : 0, worker_.now_ms());
  if (index < 0) return false;  // none up, or all at max_connections
  const BackendSpec& backend = service.backend(index);
  int fd = open_udp_upstream(backend.address);
  if (fd >= 0) {
    const int watched = worker_.watch(fd, &flow->handle, EPOLLIN);
    if (watched < 0) {
      close(fd);
      fd = watched;
    }
  }
  if (fd < 0) {
    // EMFILE/ENFILE/ENOMEM: no socket for this flow now; its next datagram
    // tries again. Counted against the service (flow not created).
    service.release(index);
    return false;
  }
  flow->fd = fd;
  flow->backend_index = index;
  flow->backend_slot = backend.slot;
  flow->refused = false;
  worker_.counters().add_backend(backend.slot, kAccepted, 1);
  worker_.counters().add_backend(backend.slot, kActive, 1);
  share_flow(flow);
  return true;
}

void UdpRelay::share_flow(UdpFlow* flow) {
  // Stamped even without a journal, so touch() asks again only a quarter timeout later.
  const uint64_t now = worker_.now_ms();
  flow->shared_ms = now;
  SyncJournal* journal = flow->service->shared().journal.get();
  if (journal == nullptr) return;
  journal->record(SyncKind::kUdpFlow, flow->service->spec().slot, flow->backend_slot, flow->hash, now);
}

void UdpRelay::release_backend(UdpFlow* flow) {
  if (flow->fd < 0) return;
  close(flow->fd);  // also leaves epoll
  flow->fd = -1;
  flow->service->release(flow->backend_index);
  worker_.counters().add_backend(flow->backend_slot, kActive, -1);
  flow->backend_index = -1;
}

void UdpRelay::forward_to_backend(UdpFlow* flow, unsigned first, unsigned count) {
  UdpBatch& b = set_.batch();
  const uint32_t service_slot = flow->service->spec().slot;
  unsigned done = 0;
  bool moved = false;
  while (done < count) {
    int error = 0;
    const unsigned sent = set_.send_datagrams(flow->fd, b.out_iov + first + done, count - done, nullptr, nullptr, nullptr, &error);
    if (sent > 0) {
      uint64_t bytes = 0;
      for (unsigned k = first + done; k < first + done + static_cast<unsigned>(sent); k++) bytes += b.out_iov[k].iov_len;
      worker_.counters().add_udp_service(service_slot, kDatagramsIn, sent);
      worker_.counters().add_udp_backend(flow->backend_slot, kDatagramsIn, sent);
      worker_.counters().add_service(service_slot, kBytesIn, static_cast<int64_t>(bytes));
      worker_.counters().add_backend(flow->backend_slot, kBytesIn, static_cast<int64_t>(bytes));
      flow->datagrams_in += static_cast<uint64_t>(sent);
      flow->bytes_in += bytes;
      done += sent;
      continue;
    }
    if (error == ECONNREFUSED && !moved) {
      // An ICMP port unreachable for an earlier datagram, reported on this
      // send: the backend is not listening. Move now and resend, once.
      report_refused(flow);
      moved = true;
      if (ensure_backend(flow)) continue;
      worker_.counters().add_udp_service(service_slot, kDatagramsDropped, count - done);
      return;  // the flow is closed
    }
    // EAGAIN/ENOBUFS: the socket buffer is full (UDP drops rather than waits);
    // other errors (ENETUNREACH, EHOSTUNREACH, EPERM): this backend cannot be
    // reached now. Either way these datagrams are lost, as on the wire.
    if (error != EAGAIN && error != EWOULDBLOCK && error != ENOBUFS) {
      worker_.counters().add_backend(flow->backend_slot, kFailed, 1);
    }
    worker_.counters().add_udp_service(service_slot, kDatagramsDropped, count - done);
    break;
  }
  touch(flow);
}

void UdpRelay::report_refused(UdpFlow* flow) {
  flow->refused = true;
  worker_.counters().add_backend(flow->backend_slot, kFailed, 1);
  // The event TCP connect failures use, so passive health sees both alike.
  worker_.emit(Event{EventType::kConnectFailed, worker_.index(), flow->service->spec().slot, flow->backend_slot,
                     ECONNREFUSED});
}

void UdpRelay::on_upstream(UdpFlow* flow) {
  // As many batches as the listener takes per event, so replies keep up with
  // the requests forwarded; what is left is reported again (level-triggered).
  for (int round = 0; round < kRoundsPerEvent; round++) {
    if (!read_replies(flow)) return;
  }
}

bool UdpRelay::read_replies(UdpFlow* flow) {
  if (flow->fd < 0 || fd_ < 0) return false;  // closed earlier in this batch
  UdpBatch& b = set_.batch();
  // This flow's replies go into the slots after those already pending.
  const unsigned base = set_.pending_replies(this);
  const unsigned space = UdpBatch::kSize - base;
  for (unsigned i = base; i < UdpBatch::kSize; i++) {
    msghdr& m = b.in[i].msg_hdr;
    m = msghdr{};
    m.msg_iov = &b.in_iov[i];
    m.msg_iovlen = 1;
  }
  const int received = recvmmsg(flow->fd, b.in + base, space, MSG_DONTWAIT, nullptr);
  if (received < 0) {
    const int error = errno;
    if (error == ECONNREFUSED) {
      if (!flow->refused) report_refused(flow);
    } else if (error != EAGAIN && error != EWOULDBLOCK && error != EINTR) {
      // EHOSTUNREACH, ENETUNREACH (ICMP): another answer of a backend that cannot be reached.
      worker_.counters().add_backend(flow->backend_slot, kFailed, 1);
      flow->refused = true;
    }
    return false;
  }
  const ServiceSpec& spec = flow->service->spec();
  const uint32_t limit = spec.udp.responses;
  unsigned pending = base;
  unsigned forward = 0;
  unsigned dropped = 0;
  for (unsigned i = base; i < base + static_cast<unsigned>(received); i++) {
    const bool over = limit != 0 && flow->responses + forward >= limit;
    if ((b.in[i].msg_hdr.msg_flags & MSG_TRUNC) != 0 || over) {
      dropped++;
      continue;
    }
    // Compact: the k-th pending reply is out_iov[k], in slot k or a later one.
    const unsigned k = pending++;
    forward++;
    b.out_iov[k] = iovec{b.slot(i), b.in[i].msg_len};
    // Copied: the flow may close before the replies leave.
    b.reply_to[k] = flow->client.storage;
    b.reply_to_length[k] = flow->client.length;
    b.reply_from[k] = flow->local;
    b.reply_service_slot[k] = spec.slot;
    b.reply_backend_slot[k] = flow->backend_slot;
    flow->datagrams_out++;
    flow->bytes_out += b.in[i].msg_len;
  }
  set_.add_pending_replies(this, pending);
  if (dropped != 0) worker_.counters().add_udp_service(spec.slot, kDatagramsDropped, dropped);
  flow->responses += forward;
  if (limit != 0 && flow->responses >= limit) {
    close_flow(flow, kFlowsCompleted, Termination::kUdpResponses);
    return false;
  }
  touch(flow);
  return static_cast<unsigned>(received) == space;  // filled: more may be waiting
}

void UdpRelay::touch(UdpFlow* flow) {
  const uint64_t now = worker_.now_ms();
  // Re-armed at most once per millisecond tick, as TCP connections are.
  if (flow->last_active_ms == now && flow->armed()) return;
  table_.touch(flow, now);
  const uint32_t idle_timeout_ms = service_->spec().idle_timeout_ms;
  worker_.timers().arm(flow, now, idle_timeout_ms);
  // Peers keep an adopted assignment for one idle timeout: refresh theirs
  // well before it ends while the flow is in use.
  if (flow->fd >= 0 && now - flow->shared_ms >= std::max<uint64_t>(1000, idle_timeout_ms / 4)) share_flow(flow);
}

void UdpRelay::on_flow_idle(UdpFlow* flow, uint64_t) { close_flow(flow, kFlowsExpired, Termination::kIdleTimeout); }

void UdpRelay::close_flow(UdpFlow* flow, UdpCounter counter, Termination why) {
  const uint32_t service_slot = flow->service->spec().slot;
  ConnectionRecord record;
  record.kind = RecordKind::kUdpEnd;
  record.termination = why;
  record.service_slot = service_slot;
  record.start_us = flow->created_us;
  record.duration_us = monotonic_us() - flow->created_us;
  record.bytes_in = flow->bytes_in;
  record.bytes_out = flow->bytes_out;
  record.datagrams_in = flow->datagrams_in;
  record.datagrams_out = flow->datagrams_out;
  record.client = ClientAddress::from(flow->client.storage);
  if (flow->fd >= 0) {
    record.established = true;
    record.backend = ClientAddress::from(flow->service->backend(flow->backend_index).address.storage);
  }
  worker_.log_connection(record);
  worker_.timers().cancel(flow);
  table_.remove(flow);
  release_backend(flow);
  release_limit(flow);
  flow->service->shared().udp_flows.fetch_sub(1, std::memory_order_relaxed);
  worker_.counters().add_service(service_slot, kActive, -1);
  if (counter != kUdpCounterCount) worker_.counters().add_udp_service(service_slot, counter, 1);
  set_.retire(flow);
}

void UdpRelay::close_backend(uint32_t slot, Termination why) {
  std::vector<UdpFlow*> doomed;
  for (UdpFlow* flow = table_.longest_idle(); flow != nullptr; flow = table_.newer(flow)) {
    if (flow->fd >= 0 && flow->backend_slot == slot) doomed.push_back(flow);
  }
  for (UdpFlow* flow : doomed) close_flow(flow, kUdpCounterCount, why);
}

void UdpRelay::dump_flows(uint32_t from, uint32_t to, std::vector<SyncRecord>* out) const {
  for (UdpFlow* flow = table_.longest_idle(); flow != nullptr; flow = table_.newer(flow)) {
    if (flow->fd < 0 || !flow->service->shared().journal || !in_dump_range(flow->hash, from, to)) continue;
    out->push_back(make_sync_record(SyncKind::kUdpFlow, flow->service->spec().slot, flow->backend_slot, flow->hash,
                                    flow->last_active_ms));
  }
}

void UdpRelay::close_all(Termination why) {
  while (UdpFlow* flow = table_.longest_idle()) close_flow(flow, kUdpCounterCount, why);
  if (fd_ >= 0) {
    worker_.unwatch(fd_);  // a socket another process shares (upgrade) stays in epoll after close()
    close(fd_);
  }
  fd_ = -1;
}

// ------------------------------------------------------------- UdpRelaySet

UdpRelaySet::UdpRelaySet(Worker& worker) : worker_(worker) {}

UdpRelaySet::~UdpRelaySet() {
  close_all();
  free_retired();
}

UdpBatch& UdpRelaySet::batch() { return *batch_; }

void UdpRelaySet::replace(std::vector<ListenerBinding> bindings) {
  std::vector<std::unique_ptr<UdpRelay>> next;
  for (ListenerBinding& binding : bindings) {
    auto kept = std::find_if(relays_.begin(), relays_.end(), [&](const auto& r) { return r && r->fd() == binding.fd; });
    if (kept != relays_.end()) {
      (*kept)->set_service(std::move(binding.service));
      next.push_back(std::move(*kept));
      continue;
    }
    if (!batch_) batch_ = std::make_unique<UdpBatch>();
    const uint32_t service_slot = binding.service->spec().slot;
    auto relay = std::make_unique<UdpRelay>(*this, binding.fd, std::move(binding.service));
    // Level-triggered: a relay stops after a few batches and is called again.
    if (worker_.watch(relay->fd(), relay->handle(), EPOLLIN) < 0) {
      worker_.emit(Event{EventType::kListenerError, worker_.index(), service_slot, kNoSlot, errno});
    }
    next.push_back(std::move(relay));
  }
  for (auto& old : relays_) {
    if (!old) continue;
    old->close_all(Termination::kRemoved);
    retired_relays_.push_back(std::move(old));
  }
  relays_ = std::move(next);
}

unsigned UdpRelaySet::pending_replies(UdpRelay* relay) {
  if (pending_ != 0 && (pending_relay_ != relay || pending_ == UdpBatch::kSize)) flush_replies();
  return pending_;
}

void UdpRelaySet::flush_replies() {
  if (pending_ == 0) return;
  UdpBatch& b = *batch_;
  const unsigned count = pending_;
  UdpRelay* relay = pending_relay_;
  pending_ = 0;
  pending_relay_ = nullptr;
  unsigned done = 0;
  if (relay->fd() >= 0) {  // else a reload closed the listener in this batch: they are lost
    // EAGAIN/ENOBUFS: the client side's buffer is full; what was not sent is lost.
    int error = 0;
    done = send_datagrams(relay->fd(), b.out_iov, count, b.reply_to, b.reply_to_length,
                          relay->wildcard() ? b.reply_from : nullptr, &error);
  }
  WorkerCounters& counters = worker_.counters();
  for (unsigned k = 0; k < count; k++) {
    if (k >= done) {
      counters.add_udp_service(b.reply_service_slot[k], kDatagramsDropped, 1);
      continue;
    }
    const auto bytes = static_cast<int64_t>(b.out_iov[k].iov_len);
    counters.add_udp_service(b.reply_service_slot[k], kDatagramsOut, 1);
    counters.add_udp_backend(b.reply_backend_slot[k], kDatagramsOut, 1);
    counters.add_service(b.reply_service_slot[k], kBytesOut, bytes);
    counters.add_backend(b.reply_backend_slot[k], kBytesOut, bytes);
  }
}

namespace {

bool same_peer(const sockaddr_storage* to, const socklen_t* to_length, const SocketAddress* source, unsigned a, unsigned b) {
  if (to != nullptr && (to_length[a] != to_length[b] || std::memcmp(&to[a], &to[b], to_length[a]) != 0)) return false;
  return source == nullptr || same_address(source[a], source[b]);
}

}  // namespace

unsigned UdpRelaySet::send_datagrams(int fd, const iovec* datagrams, unsigned count, const sockaddr_storage* to,
                                     const socklen_t* to_length, const SocketAddress* source, int* error) {
  UdpBatch& b = *batch_;
  // Group: a run of datagrams of one size (the last may be shorter) becomes one entry.
  unsigned entries = 0;
  for (unsigned i = 0; i < count;) {
    const size_t segment = datagrams[i].iov_len;
    unsigned end = i + 1;
    size_t total = segment;
    if (gso_ && segment > 0 && segment <= kGsoMaxSegment) {
      while (end < count && end - i < kGsoMaxSegments) {
        const size_t length = datagrams[end].iov_len;
        if (length == 0 || length > segment || total + length > kGsoMaxBytes) break;
        if (!same_peer(to, to_length, source, i, end)) break;
        total += length;
        end++;
        if (length < segment) break;  // only the last segment may be shorter
      }
    }
    // Join the run's bytes behind the first datagram's, in its slot (64 KiB,
    // more than kGsoMaxBytes; the later slots stay as they were, so a resend
    // after a partial send can group again from `datagrams`).
    auto* base = static_cast<uint8_t*>(datagrams[i].iov_base);
    size_t offset = segment;
    for (unsigned k = i + 1; k < end; k++) {
      std::memcpy(base + offset, datagrams[k].iov_base, datagrams[k].iov_len);
      offset += datagrams[k].iov_len;
    }
    b.entry_iov[entries] = iovec{base, total};
    msghdr& m = b.entry[entries].msg_hdr;
    m = msghdr{};
    m.msg_name = to == nullptr ? nullptr : const_cast<sockaddr_storage*>(&to[i]);
    m.msg_namelen = to == nullptr ? 0 : to_length[i];
    m.msg_iov = &b.entry_iov[entries];
    m.msg_iovlen = 1;
    uint8_t* control = b.entry_control[entries];
    size_t control_length = 0;
    if (source != nullptr) control_length = write_packet_source(source[i], control);
    if (end - i > 1) {
      std::memset(control + control_length, 0, CMSG_SPACE(sizeof(uint16_t)));
      auto* c = reinterpret_cast<cmsghdr*>(control + control_length);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      const auto size = static_cast<uint16_t>(segment);
      std::memcpy(CMSG_DATA(c), &size, sizeof size);
      control_length += CMSG_SPACE(sizeof(uint16_t));
    }
    if (control_length != 0) {
      m.msg_control = control;
      m.msg_controllen = control_length;
    }
    b.entry_datagrams[entries] = end - i;
    entries++;
    i = end;
  }
  unsigned sent_entries = 0;
  unsigned sent = 0;
  while (sent_entries < entries) {
    const int n = sendmmsg(fd, b.entry + sent_entries, entries - sent_entries, MSG_DONTWAIT);
    if (n > 0) {
      for (int e = 0; e < n; e++) sent += b.entry_datagrams[sent_entries + static_cast<unsigned>(e)];
      sent_entries += static_cast<unsigned>(n);
      continue;
    }
    if (errno == EINTR) continue;
    *error = errno;
    if (b.entry_datagrams[sent_entries] > 1 && (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT || errno == EOPNOTSUPP)) {
      // This kernel or route cannot segment: one datagram at a time from
      // now on, starting again from the first unsent one.
      gso_ = false;
      return sent + send_datagrams(fd, datagrams + sent, count - sent, to == nullptr ? nullptr : to + sent,
                                   to == nullptr ? nullptr : to_length + sent, source == nullptr ? nullptr : source + sent, error);
    }
    break;
  }
  return sent;
}

void UdpRelaySet::on_io(const IoHandle* handle, uint32_t) {
  if (handle->kind == IoHandle::Kind::kUdpListener) {
    static_cast<UdpRelay*>(handle->owner)->on_readable();
    return;
  }
  auto* flow = static_cast<UdpFlow*>(handle->owner);
  if (flow->fd < 0) return;  // closed earlier in this batch
  static_cast<UdpRelay*>(flow->owner())->on_upstream(flow);
}

void UdpRelaySet::close_backend(uint32_t slot, Termination why) {
  for (auto& relay : relays_) relay->close_backend(slot, why);
}

void UdpRelaySet::dump_flows(uint32_t from, uint32_t to, SyncJournal& journal) const {
  std::vector<SyncRecord> records;
  for (const auto& relay : relays_) relay->dump_flows(from, to, &records);
  journal.append_dump(records);
}

void UdpRelaySet::close_all() {
  pending_ = 0;  // their listeners close now
  pending_relay_ = nullptr;
  for (auto& relay : relays_) relay->close_all(Termination::kShutdown);
  for (auto& relay : relays_) retired_relays_.push_back(std::move(relay));
  relays_.clear();
}

void UdpRelaySet::free_retired() {
  for (UdpFlow* flow : retired_flows_) delete flow;
  retired_flows_.clear();
  retired_relays_.clear();
}

}  // namespace fulcrum
