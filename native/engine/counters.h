// Shared-memory counters. Each worker owns one cache-line-aligned block and is
// the only writer of it; the control plane sums the blocks on a timer through
// one external ArrayBuffer (see the layout exported by the N-API glue).
//
// Arena layout (all u64, little endian as the host):
//   [global block: GlobalCounter]                      one 64-byte line
//   [worker 0 block] ... [worker N-1 block]             kWorkerBlockBytes each
// A worker block:
//   [WorkerCounter line][ServiceCounter x kMaxServices][BackendCounter x kMaxBackends]
//   [UdpCounter x kMaxServices][UdpCounter x kMaxBackends]   (protocol: udp only)
//   [AdmissionCounter x kMaxServices]
//   [RelayCounter x kMaxServices]                           (protocol: tcp)
// Service and backend counters are indexed by the slot the control plane
// assigns, so they survive reloads.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "enum_names.h"

namespace fulcrum {

inline constexpr uint32_t kCounterLayoutVersion = 5;
inline constexpr uint32_t kMaxServices = 256;
inline constexpr uint32_t kMaxBackends = 4096;
inline constexpr size_t kCacheLine = 64;
inline constexpr size_t kLineWords = kCacheLine / sizeof(uint64_t);

enum GlobalCounter : uint32_t { kEventsDropped = 0, kGlobalCounterCount };
// kAppliedGeneration: the generation of the last snapshot this worker has
// swapped in (see Engine::apply), so the control plane can tell when a reload
// or a drain has taken effect everywhere without waiting on a worker.
// kPgCancel*: PostgreSQL cancel requests sent on to a service's other
// backends (pg_cancel.h): requests broadcast, connections that delivered the
// request, connections that did not (refused, timed out, no descriptor, over
// the in-flight bound), and requests not broadcast (over the per-second bound).
// kAcceptPaused: 1 while this worker's listeners are paused (a gauge).
enum WorkerCounter : uint32_t {
  kPooledPipes = 0,
  kAcceptPauses,
  kAppliedGeneration,
  kAcceptPaused,
  kPgCancelBroadcasts,
  kPgCancelSent,
  kPgCancelFailed,
  kPgCancelSkipped,
  kWorkerCounterCount
};
// Shared by services and backends. For a service, kAccepted counts accepted
// clients and kFailed clients closed without reaching any backend; for a
// backend, kAccepted counts established connections and kFailed failed
// connect attempts (refused, timed out, unreachable). The queue counters are
// kept for services only: kQueued counts clients that had to wait for a
// backend with room, kRefused clients turned away because every backend was
// full and the queue was too (or waiting took too long), kQueueTimeouts the
// part of kRefused that waited the whole queue timeout.
enum TrafficCounter : uint32_t {
  kAccepted = 0,
  kActive,
  kFailed,
  kBytesIn,   // client -> backend
  kBytesOut,  // backend -> client
  kQueued,
  kRefused,
  kQueueTimeouts,
  kTrafficCounterCount
};

// UDP services and their backends count datagrams in a second line each. The
// traffic line above counts flows for them: kAccepted flows created, kActive
// flows open, kFailed (service) flows that could not be created (no backend,
// max_flows with nothing to evict, no socket), kFailed (backend) ICMP
// unreachable answers and send errors; kBytesIn/kBytesOut payload bytes.
enum UdpCounter : uint32_t {
  kDatagramsIn = 0,  // client -> backend, forwarded
  kDatagramsOut,     // backend -> client, forwarded
  kDatagramsDropped, // received but not forwarded (no flow, truncated, buffer full, over `responses`)
  kFlowsExpired,     // idle for timeouts.idle
  kFlowsEvicted,     // the longest idle, to make room under max_flows
  kFlowsCompleted,   // ended after `udp.responses` replies
  kFlowsMoved,       // re-balanced because their backend went down or refused (ICMP)
  kUdpCounterCount
};

// Who was let in (a third line per service): clients turned away before any
// backend is touched, and PROXY protocol headers read from clients. TCP counts
// connections (each is also in kAccepted, never in kFailed); UDP counts
// datagrams (never in kDatagramsDropped).
enum AdmissionCounter : uint32_t {
  kDenied = 0,        // the ACL (allow/deny)
  kOverConnections,   // client_limits.max_connections
  kOverRate,          // client_limits.rate: connections (TCP) or datagrams (UDP)
  kUntracked,         // admitted without limits: the client table was full there
  kProxyAccepted,     // PROXY headers read
  kProxyMissing,      // the client spoke without one (or closed before a byte)
  kProxyMalformed,    // a signature, then bytes the spec does not allow, or the end of the stream
  kProxyTimeout,      // no complete header within accept_proxy_timeout
  kAdmissionCounterCount
};

// The kernel relay (kernel_relay.h), per service: connections handed to it,
// those in it now (a gauge), those that came back because they turned bulk,
// and those that asked for it but stayed in user space, by reason.
enum RelayCounter : uint32_t {
  kKernelEntered = 0,
  kKernelActive,
  kKernelBulkExits,
  kKernelFallbackUnavailable,    // no CAP_BPF/CAP_NET_ADMIN, no sockmap, program refused
  kKernelFallbackNotEstablished, // the client's FIN was already here
  kKernelFallbackMapFull,
  kKernelFallbackInsertFailed,
  kRelayCounterCount
};

static_assert(kGlobalCounterCount <= kLineWords && kWorkerCounterCount <= kLineWords &&
              kTrafficCounterCount <= kLineWords && kUdpCounterCount <= kLineWords &&
              kAdmissionCounterCount <= kLineWords && kRelayCounterCount <= kLineWords);

// The names the control plane reads each counter by (addon.counterLayout; the
// TypeScript side checks its list against them at load).
inline constexpr EnumName<GlobalCounter> kGlobalCounterNames[] = {{kEventsDropped, "eventsDropped"}};
inline constexpr EnumName<WorkerCounter> kWorkerCounterNames[] = {
    {kPooledPipes, "pooledPipes"},           {kAcceptPauses, "acceptPauses"},   {kAppliedGeneration, "appliedGeneration"},
    {kAcceptPaused, "acceptPaused"},
    {kPgCancelBroadcasts, "pgCancelBroadcasts"}, {kPgCancelSent, "pgCancelSent"}, {kPgCancelFailed, "pgCancelFailed"},
    {kPgCancelSkipped, "pgCancelSkipped"}};
inline constexpr EnumName<TrafficCounter> kTrafficCounterNames[] = {
    {kAccepted, "accepted"}, {kActive, "active"}, {kFailed, "failed"}, {kBytesIn, "bytesIn"},
    {kBytesOut, "bytesOut"}, {kQueued, "queued"}, {kRefused, "refused"}, {kQueueTimeouts, "queueTimeouts"}};
inline constexpr EnumName<UdpCounter> kUdpCounterNames[] = {
    {kDatagramsIn, "datagramsIn"},     {kDatagramsOut, "datagramsOut"},     {kDatagramsDropped, "datagramsDropped"},
    {kFlowsExpired, "flowsExpired"},   {kFlowsEvicted, "flowsEvicted"},     {kFlowsCompleted, "flowsCompleted"},
    {kFlowsMoved, "flowsMoved"}};
inline constexpr EnumName<AdmissionCounter> kAdmissionCounterNames[] = {
    {kDenied, "denied"},               {kOverConnections, "overConnections"}, {kOverRate, "overRate"},
    {kUntracked, "untracked"},         {kProxyAccepted, "proxyAccepted"},     {kProxyMissing, "proxyMissing"},
    {kProxyMalformed, "proxyMalformed"}, {kProxyTimeout, "proxyTimeout"}};
inline constexpr EnumName<RelayCounter> kRelayCounterNames[] = {
    {kKernelEntered, "kernelEntered"},
    {kKernelActive, "kernelActive"},
    {kKernelBulkExits, "kernelBulkExits"},
    {kKernelFallbackUnavailable, "fallbackUnavailable"},
    {kKernelFallbackNotEstablished, "fallbackNotEstablished"},
    {kKernelFallbackMapFull, "fallbackMapFull"},
    {kKernelFallbackInsertFailed, "fallbackInsertFailed"}};

static_assert(names_every_value(kRelayCounterNames, kRelayCounterCount) &&
              names_every_value(kGlobalCounterNames, kGlobalCounterCount) &&
              names_every_value(kWorkerCounterNames, kWorkerCounterCount) &&
              names_every_value(kTrafficCounterNames, kTrafficCounterCount) &&
              names_every_value(kUdpCounterNames, kUdpCounterCount) &&
              names_every_value(kAdmissionCounterNames, kAdmissionCounterCount));

inline constexpr size_t kServiceOffsetWords = kLineWords;
inline constexpr size_t kBackendOffsetWords = kServiceOffsetWords + kMaxServices * kLineWords;
inline constexpr size_t kUdpServiceOffsetWords = kBackendOffsetWords + kMaxBackends * kLineWords;
inline constexpr size_t kUdpBackendOffsetWords = kUdpServiceOffsetWords + kMaxServices * kLineWords;
inline constexpr size_t kAdmissionOffsetWords = kUdpBackendOffsetWords + kMaxBackends * kLineWords;
inline constexpr size_t kRelayOffsetWords = kAdmissionOffsetWords + kMaxServices * kLineWords;
inline constexpr size_t kWorkerBlockWords = kRelayOffsetWords + kMaxServices * kLineWords;

// A view of one worker's block. Single writer: add() uses a relaxed load and
// store instead of a locked read-modify-write, which is exact because no other
// thread writes these words, and readers see whole u64 values.
class WorkerCounters {
 public:
  explicit WorkerCounters(std::atomic<uint64_t>* block) : block_(block) {}

  void add_worker(WorkerCounter c, int64_t n) { add(block_ + c, n); }
  void set_worker(WorkerCounter c, uint64_t v) { block_[c].store(v, std::memory_order_relaxed); }
  void add_service(uint32_t slot, TrafficCounter c, int64_t n) {
    add(block_ + kServiceOffsetWords + slot * kLineWords + c, n);
  }
  void add_backend(uint32_t slot, TrafficCounter c, int64_t n) {
    add(block_ + kBackendOffsetWords + slot * kLineWords + c, n);
  }
  void add_udp_service(uint32_t slot, UdpCounter c, int64_t n) {
    add(block_ + kUdpServiceOffsetWords + slot * kLineWords + c, n);
  }
  void add_udp_backend(uint32_t slot, UdpCounter c, int64_t n) {
    add(block_ + kUdpBackendOffsetWords + slot * kLineWords + c, n);
  }
  void add_admission(uint32_t slot, AdmissionCounter c, int64_t n) {
    add(block_ + kAdmissionOffsetWords + slot * kLineWords + c, n);
  }
  void add_relay(uint32_t slot, RelayCounter c, int64_t n) { add(block_ + kRelayOffsetWords + slot * kLineWords + c, n); }

 private:
  static void add(std::atomic<uint64_t>* word, int64_t n) {
    word->store(word->load(std::memory_order_relaxed) + static_cast<uint64_t>(n),
                std::memory_order_relaxed);
  }
  std::atomic<uint64_t>* block_;
};

// Owns the memory. Shared between the engine and the JS ArrayBuffer that
// views it, so whichever is released last frees it.
class CounterArena {
 public:
  explicit CounterArena(uint32_t workers);
  ~CounterArena();
  CounterArena(const CounterArena&) = delete;
  CounterArena& operator=(const CounterArena&) = delete;

  void* data() const { return words_; }
  size_t byte_length() const { return words_count_ * sizeof(uint64_t); }
  uint32_t workers() const { return workers_; }
  WorkerCounters worker(uint32_t index) const {
    return WorkerCounters(words_ + kLineWords + index * kWorkerBlockWords);
  }
  void add_global(GlobalCounter c, uint64_t n) { words_[c].fetch_add(n, std::memory_order_relaxed); }
  // A backend counter summed over every worker (a relaxed read of each block).
  uint64_t backend_total(uint32_t slot, TrafficCounter c) const {
    uint64_t total = 0;
    for (uint32_t w = 0; w < workers_; w++) {
      total += words_[kLineWords + w * kWorkerBlockWords + kBackendOffsetWords + slot * kLineWords + c].load(std::memory_order_relaxed);
    }
    return total;
  }

 private:
  uint32_t workers_;
  size_t words_count_;
  std::atomic<uint64_t>* words_;
};

}  // namespace fulcrum
