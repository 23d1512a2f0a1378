#include "connection_log_format.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <time.h>

#include <charconv>
#include <cstdio>

namespace fulcrum {

namespace {

// Numbers through std::to_chars, not printf: the writer formats every
// record, and a format string's parsing is pure overhead for integers.
void append_uint(uint64_t value, std::string* out) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  out->append(digits, static_cast<size_t>(end - digits));
}

// Microseconds as milliseconds with three decimals: 1234567 -> "1234.567".
void append_ms(uint64_t us, std::string* out) {
  append_uint(us / 1000, out);
  const auto frac = static_cast<unsigned>(us % 1000);
  const char tail[4] = {'.', static_cast<char>('0' + frac / 100), static_cast<char>('0' + frac / 10 % 10),
                        static_cast<char>('0' + frac % 10)};
  out->append(tail, 4);
}

// "192.0.2.1:5678" or "[2001:db8::1]:5678"; "-" for none. (IPv4-mapped IPv6
// addresses arrive here already unmapped: ClientAddress::from.)
void append_address(const ClientAddress& address, std::string* out) {
  if (address.family == AF_INET) {
    for (int i = 0; i < 4; i++) {
      if (i > 0) out->push_back('.');
      append_uint(address.bytes[i], out);
    }
  } else if (address.family == AF_INET6) {
    char host[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, address.bytes, host, sizeof host) == nullptr) {
      out->push_back('?');
      return;
    }
    out->push_back('[');
    out->append(host);
    out->push_back(']');
  } else {
    out->push_back('-');
    return;
  }
  out->push_back(':');
  append_uint(address.port, out);
}

void append_json_address(const char* key, const ClientAddress& address, std::string* out) {
  out->append(",\"").append(key).append("\":");
  if (address.family == 0) {
    out->append("null");
    return;
  }
  out->push_back('"');
  append_address(address, out);
  out->push_back('"');
}

void append_json_uint(const char* key, uint64_t value, std::string* out) {
  out->append(",\"").append(key).append("\":");
  append_uint(value, out);
}

void append_json_ms(const char* key, uint64_t us, std::string* out) {
  out->append(",\"").append(key).append("\":");
  append_ms(us, out);
}

bool is_udp(const ConnectionRecord& record) { return record.kind == RecordKind::kUdpEnd; }
bool is_interim(const ConnectionRecord& record) { return record.kind == RecordKind::kTcpInterim; }

}  // namespace

void append_iso_time(uint64_t unix_us, std::string* out) {
  // The "YYYY-MM-DDTHH:MM:SS" part of the last second asked for, per thread:
  // records come in time order, so gmtime_r runs about once a second.
  thread_local time_t cached_second = -1;
  thread_local char cached[72];  // room for any int (the warning), 19 used
  const time_t seconds = static_cast<time_t>(unix_us / 1000000);
  if (seconds != cached_second) {
    tm utc{};
    gmtime_r(&seconds, &utc);
    std::snprintf(cached, sizeof cached, "%04d-%02d-%02dT%02d:%02d:%02d", utc.tm_year + 1900, utc.tm_mon + 1,
                  utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec);
    cached_second = seconds;
  }
  out->append(cached, 19);
  const auto ms = static_cast<unsigned>((unix_us / 1000) % 1000);
  const char tail[5] = {'.', static_cast<char>('0' + ms / 100), static_cast<char>('0' + ms / 10 % 10),
                        static_cast<char>('0' + ms % 10), 'Z'};
  out->append(tail, 5);
}

uint64_t record_end_unix_us(const ConnectionRecord& record, const RecordClock& clock) {
  return static_cast<uint64_t>(static_cast<int64_t>(record.start_us + record.duration_us) + clock.realtime_offset_us);
}

void append_record_json(const ConnectionRecord& record, const RecordLabels& labels, const RecordClock& clock,
                        std::string* out) {
  out->append("{\"time\":\"");
  append_iso_time(record_end_unix_us(record, clock), out);
  out->append("\",\"start\":\"");
  append_iso_time(static_cast<uint64_t>(static_cast<int64_t>(record.start_us) + clock.realtime_offset_us), out);
  out->append(is_udp(record) ? "\",\"type\":\"udp\"" : "\",\"type\":\"tcp\"");
  out->append(is_interim(record) ? ",\"event\":\"interim\"" : ",\"event\":\"end\"");
  out->append(",\"service\":\"").append(labels.service).append("\",\"listen\":\"").append(labels.listen).push_back('"');
  append_json_address("client", record.client, out);
  if (record.proxy_client.family != 0) append_json_address("proxy_client", record.proxy_client, out);
  append_json_address("backend", record.backend, out);
  if (!is_interim(record)) {
    out->append(",\"termination\":\"").append(enum_name(kTerminationNames, record.termination)).push_back('"');
  }
  if (!is_udp(record)) {
    append_json_ms("queue_ms", record.queue_us, out);
    append_json_ms("connect_ms", record.connect_us, out);
    append_json_uint("attempts", record.attempts, out);
  }
  append_json_ms("duration_ms", record.duration_us, out);
  append_json_uint("bytes_in", record.bytes_in, out);
  append_json_uint("bytes_out", record.bytes_out, out);
  if (is_udp(record)) {
    append_json_uint("datagrams_in", record.datagrams_in, out);
    append_json_uint("datagrams_out", record.datagrams_out, out);
  }
  append_json_uint("worker", record.worker, out);
  out->push_back('}');
}

void append_record_text(const ConnectionRecord& record, const RecordLabels& labels, const RecordClock& clock,
                        std::string* out) {
  // 2026-12-07T16:40:01.123Z tcp pg 127.0.0.1:50000 -> 127.0.0.1:5432 -> 127.0.0.1:5433
  //   client_closed queue=0.000ms connect=0.213ms duration=1234.500ms attempts=1 in=123 out=456
  append_iso_time(record_end_unix_us(record, clock), out);
  out->append(is_udp(record) ? " udp " : " tcp ");
  out->append(labels.service).push_back(' ');
  append_address(record.client, out);
  if (record.proxy_client.family != 0) {
    out->append(" (proxy ");
    append_address(record.proxy_client, out);
    out->push_back(')');
  }
  out->append(" -> ").append(labels.listen).append(" -> ");
  append_address(record.backend, out);
  out->push_back(' ');
  out->append(is_interim(record) ? "open" : enum_name(kTerminationNames, record.termination));
  if (!is_udp(record)) {
    out->append(" queue=");
    append_ms(record.queue_us, out);
    out->append("ms connect=");
    append_ms(record.connect_us, out);
    out->append("ms");
  }
  out->append(" duration=");
  append_ms(record.duration_us, out);
  out->append("ms");
  if (!is_udp(record)) {
    out->append(" attempts=");
    append_uint(record.attempts, out);
  }
  out->append(" in=");
  append_uint(record.bytes_in, out);
  out->append(" out=");
  append_uint(record.bytes_out, out);
  if (is_udp(record)) {
    out->append(" datagrams_in=");
    append_uint(record.datagrams_in, out);
    out->append(" datagrams_out=");
    append_uint(record.datagrams_out, out);
  }
}

void append_syslog_header(uint8_t facility, const std::string& hostname, const std::string& app_name, int pid,
                          uint64_t unix_us, std::string* out) {
  constexpr unsigned kSeverityInformational = 6;
  out->push_back('<');
  append_uint(static_cast<uint64_t>(facility) * 8 + kSeverityInformational, out);
  out->append(">1 ");
  append_iso_time(unix_us, out);
  out->push_back(' ');
  out->append(hostname.empty() ? "-" : hostname).push_back(' ');
  out->append(app_name).push_back(' ');
  append_uint(static_cast<uint64_t>(pid), out);
  out->append(" connection - ");
}

}  // namespace fulcrum
