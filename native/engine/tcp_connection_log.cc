// TcpConnection's connection-log records (connection_record.h): one when it
// ends, from finish(), and an interim one every connection_log.interval while
// it relays, from the worker's periodic walk. Worker thread.
#include "clock.h"
#include "tcp_connection.h"
#include "worker.h"

namespace fulcrum {

void TcpConnection::log_record(RecordKind kind, Termination why) {
  ConnectionRecord record;
  record.kind = kind;
  record.termination = why;
  record.attempts = static_cast<uint8_t>(tried_count_);
  record.established = backend_established_;
  record.service_slot = service_->spec().slot;
  record.start_us = accepted_us_;
  record.duration_us = monotonic_us() - accepted_us_;
  record.queue_us = queue_us_;
  record.connect_us = connect_us_;
  record.bytes_in = bytes_in_;
  record.bytes_out = bytes_out_;
  if (proxy_peer_.family != 0) {
    // A PROXY header named the client: accept()'s peer was the proxy in front.
    record.client = proxy_peer_;
    record.proxy_client = ClientAddress::from(client_address_);
  } else {
    record.client = ClientAddress::from(client_address_);
  }
  // The backend reached, or the last one tried.
  if (tried_count_ > 0) record.backend = ClientAddress::from(service_->backend(tried_[tried_count_ - 1]).address.storage);
  worker_.log_connection(record);
}

void TcpConnection::log_interim_if_due(uint64_t now_us, uint64_t interval_us) {
  if (state_ != State::kRelaying && state_ != State::kKernel) return;
  const uint64_t since = interim_at_us_ != 0 ? interim_at_us_ : accepted_us_;
  if (now_us - since < interval_us) return;
  interim_at_us_ = now_us;
  sync_kernel_bytes();
  log_record(RecordKind::kTcpInterim, Termination::kClientClosed);
}

}  // namespace fulcrum
