#include "udp_flow_table.h"

#include <netinet/in.h>

#include <cstring>

namespace fulcrum {

namespace {

constexpr size_t kInitialSlots = 64;

void copy_address(const sockaddr_storage& address, uint8_t* ip, uint16_t* port) {
  if (address.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address);
    std::memcpy(ip, &in6.sin6_addr, 16);
    *port = in6.sin6_port;
    return;
  }
  const auto& in4 = reinterpret_cast<const sockaddr_in&>(address);
  std::memcpy(ip, &in4.sin_addr, 4);
  *port = in4.sin_port;
}

}  // namespace

bool FlowKey::operator==(const FlowKey& other) const {
  return family == other.family && client_port == other.client_port && local_port == other.local_port &&
         std::memcmp(client_ip, other.client_ip, sizeof client_ip) == 0 &&
         std::memcmp(local_ip, other.local_ip, sizeof local_ip) == 0;
}

FlowKey make_flow_key(const sockaddr_storage& client, const sockaddr_storage& local) {
  FlowKey key;
  key.family = static_cast<uint8_t>(client.ss_family);
  copy_address(client, key.client_ip, &key.client_port);
  copy_address(local, key.local_ip, &key.local_port);
  return key;
}

UdpFlowTable::UdpFlowTable() : slots_(kInitialSlots, nullptr) {}

UdpFlow* UdpFlowTable::find(const FlowKey& key, uint64_t hash) const {
  const size_t mask = slots_.size() - 1;
  for (size_t i = probe_start(hash);; i = (i + 1) & mask) {
    UdpFlow* flow = slots_[i];
    if (flow == nullptr) return nullptr;
    if (flow->hash == hash && flow->key == key) return flow;
  }
}

void UdpFlowTable::insert(UdpFlow* flow) {
  // At most half full: probes stay short.
  if ((size_ + 1) * 2 > slots_.size()) grow();
  place(flow);
  size_++;
  link_newest(flow);
}

void UdpFlowTable::place(UdpFlow* flow) {
  const size_t mask = slots_.size() - 1;
  size_t i = probe_start(flow->hash);
  while (slots_[i] != nullptr) i = (i + 1) & mask;
  slots_[i] = flow;
}

void UdpFlowTable::grow() {
  std::vector<UdpFlow*> old(slots_.size() * 2, nullptr);
  old.swap(slots_);
  for (UdpFlow* flow : old) {
    if (flow != nullptr) place(flow);
  }
}

void UdpFlowTable::remove(UdpFlow* flow) {
  const size_t mask = slots_.size() - 1;
  size_t i = probe_start(flow->hash);
  while (slots_[i] != flow) {
    if (slots_[i] == nullptr) return;  // not in the table
    i = (i + 1) & mask;
  }
  // Backward-shift deletion: move each later entry of the run into the hole
  // when its home slot is at or before the hole (cyclically).
  size_t hole = i;
  for (size_t j = (hole + 1) & mask; slots_[j] != nullptr; j = (j + 1) & mask) {
    const size_t home = probe_start(slots_[j]->hash);
    const bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
    if (movable) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole] = nullptr;
  size_--;
  unlink(flow);
}

void UdpFlowTable::touch(UdpFlow* flow, uint64_t now_ms) {
  flow->last_active_ms = now_ms;
  if (newest_ == flow) return;
  unlink(flow);
  link_newest(flow);
}

void UdpFlowTable::unlink(UdpFlow* flow) {
  if (flow->older_ != nullptr) flow->older_->newer_ = flow->newer_;
  else if (oldest_ == flow) oldest_ = flow->newer_;
  if (flow->newer_ != nullptr) flow->newer_->older_ = flow->older_;
  else if (newest_ == flow) newest_ = flow->older_;
  flow->older_ = flow->newer_ = nullptr;
}

void UdpFlowTable::link_newest(UdpFlow* flow) {
  flow->older_ = newest_;
  flow->newer_ = nullptr;
  if (newest_ != nullptr) newest_->newer_ = flow;
  newest_ = flow;
  if (oldest_ == nullptr) oldest_ = flow;
}

}  // namespace fulcrum
