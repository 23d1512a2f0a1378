// How a connection record reads: one JSON object or one human line (in the
// spirit of HAProxy's tcplog), and the RFC 5424 syslog frame around either.
// Runs on the log writer thread only; appends to a caller's buffer, so a
// batch of records costs no allocation once the buffer has grown.
#pragma once

#include <cstdint>
#include <string>

#include "connection_record.h"

namespace fulcrum {

// What the record itself does not carry: its service's name and listen
// address (from the running snapshot, by slot).
struct RecordLabels {
  std::string service;
  std::string listen;
};

// Turns a record's monotonic start into wall-clock time: the offset
// (CLOCK_REALTIME - CLOCK_MONOTONIC, in us) taken when the writer starts.
struct RecordClock {
  int64_t realtime_offset_us = 0;
};

void append_record_json(const ConnectionRecord& record, const RecordLabels& labels, const RecordClock& clock,
                        std::string* out);
void append_record_text(const ConnectionRecord& record, const RecordLabels& labels, const RecordClock& clock,
                        std::string* out);

// "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - " (RFC 5424 section 6),
// severity informational; the record's text follows it.
void append_syslog_header(uint8_t facility, const std::string& hostname, const std::string& app_name, int pid,
                          uint64_t unix_us, std::string* out);

// ISO 8601 UTC with milliseconds: 2026-12-07T16:40:01.123Z.
void append_iso_time(uint64_t unix_us, std::string* out);

// The wall-clock time a record's event happened at (its end; for an interim
// record, the moment it was taken), in microseconds since the epoch.
uint64_t record_end_unix_us(const ConnectionRecord& record, const RecordClock& clock);

}  // namespace fulcrum
