// Events from the workers to the control plane (connect failures for passive
// health, listener errors, accept pauses, refused clients). Workers push; the JS thread takes
// the whole batch. A worker never waits on JS: the lock is held only to append
// or to swap the batch out, a full queue drops the event and counts it, and
// JS is woken only when the queue goes from empty to non-empty.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "counters.h"
#include "enum_names.h"

namespace fulcrum {

enum class EventType : uint8_t {
  kConnectFailed,  // service, backend, error
  kListenerError,  // service, error (accept failed for a reason other than fd shortage)
  kAcceptPaused,   // error (EMFILE, ENFILE, ENOBUFS, ENOMEM)
  kAcceptResumed,
  kSourceBindFailed,  // service, error: source: client could not bind the client's address (at most 1/s per worker)
  kClientRefused,     // service, client, reason, suppressed (at most kRefusalEventsPerSecond per worker)
};

// The names events reach JS under (NativeEvent's type in src/engine/native.ts).
inline constexpr EnumName<EventType> kEventTypeNames[] = {
    {EventType::kConnectFailed, "connect_failed"},     {EventType::kListenerError, "listener_error"},
    {EventType::kAcceptPaused, "accept_paused"},       {EventType::kAcceptResumed, "accept_resumed"},
    {EventType::kSourceBindFailed, "source_bind_failed"}, {EventType::kClientRefused, "client_refused"}};
static_assert(names_every_value(kEventTypeNames, static_cast<size_t>(EventType::kClientRefused) + 1));

// The client of a kClientRefused event: its address and port, compact (an
// event is copied into the queue, and sockaddr_storage is 128 bytes).
struct ClientAddress {
  uint8_t family = 0;  // AF_INET, AF_INET6 (0: none)
  uint16_t port = 0;   // host order
  uint8_t bytes[16] = {};

  static ClientAddress from(const sockaddr_storage& address);
  // "192.0.2.1:5678" or "[2001:db8::1]:5678" (format_socket_address); "?" when none.
  std::string text() const;
};

inline constexpr uint32_t kNoSlot = UINT32_MAX;

struct Event {
  EventType type;
  uint32_t worker;
  uint32_t service_slot = kNoSlot;
  uint32_t backend_slot = kNoSlot;
  int error = 0;  // positive errno
  // kClientRefused: who, why (the admission counter that counted it), and how
  // many refusals of this worker went unreported since its last such event.
  ClientAddress client{};
  uint32_t reason = 0;
  uint32_t suppressed = 0;
};

class EventSink {
 public:
  // wake(sink) runs on a worker thread and must not block (a thread-safe
  // function's non-blocking call); the JS thread then calls take().
  EventSink(std::shared_ptr<CounterArena> counters, std::function<void(EventSink*)> wake, size_t capacity = 4096)
      : counters_(std::move(counters)), wake_(std::move(wake)), capacity_(capacity) {}

  // Any thread. Returns false when the event was dropped.
  bool push(const Event& event);
  // JS thread: takes every queued event.
  std::vector<Event> take();

 private:
  std::shared_ptr<CounterArena> counters_;
  std::function<void(EventSink*)> wake_;
  size_t capacity_;
  std::mutex mutex_;
  std::vector<Event> queue_;
};

}  // namespace fulcrum
