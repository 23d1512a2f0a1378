#include "event_sink.h"

#include <cstring>

#include "address.h"

namespace fulcrum {

ClientAddress ClientAddress::from(const sockaddr_storage& address) {
  const sockaddr_storage plain = unmap_ipv4(address);
  ClientAddress out;
  if (plain.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(plain);
    out.family = AF_INET;
    out.port = ntohs(v4.sin_port);
    std::memcpy(out.bytes, &v4.sin_addr, 4);
  } else if (plain.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(plain);
    out.family = AF_INET6;
    out.port = ntohs(v6.sin6_port);
    std::memcpy(out.bytes, &v6.sin6_addr, 16);
  }
  return out;
}

std::string ClientAddress::text() const {
  SocketAddress address;
  if (family == AF_INET) {
    auto& v4 = reinterpret_cast<sockaddr_in&>(address.storage);
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    std::memcpy(&v4.sin_addr, bytes, 4);
  } else if (family == AF_INET6) {
    auto& v6 = reinterpret_cast<sockaddr_in6&>(address.storage);
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(port);
    std::memcpy(&v6.sin6_addr, bytes, 16);
  }
  return format_socket_address(address);
}

bool EventSink::push(const Event& event) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (queue_.size() >= capacity_) {
      counters_->add_global(kEventsDropped, 1);
      return false;
    }
    was_empty = queue_.empty();
    queue_.push_back(event);
  }
  if (was_empty && wake_) wake_(this);
  return true;
}

std::vector<Event> EventSink::take() {
  std::vector<Event> batch;
  std::lock_guard<std::mutex> lock(mutex_);
  batch.swap(queue_);
  return batch;
}

}  // namespace fulcrum
