// The connection log's N-API surface (EngineHandle's methods for it, and the
// stats layout the addon exports). Coarse calls only: configure, reopen, and
// one read of the aggregates per scrape; no call per connection.
//
//   engine.configureConnectionLog({output, path, syslogHost, syslogPort, format,
//                                   sample, maxPerSecond, intervalMs, facility, tag})
//   engine.reopenConnectionLog()
//   engine.connectionLogCounters() -> {written, dropped, overCap, sampledOut, writeErrors}
//   engine.connectionStats(slots[]) -> Float64Array, slots.length x wordsPerService
//   addon.connectionStatsLayout     -> {terminations, terminationOffset, histograms, wordsPerService}
#include <string>
#include <vector>

#include "../engine/address.h"
#include "../engine/connection_log.h"
#include "../engine/connection_stats.h"
#include "connection_log_glue.h"
#include "engine_handle.h"
#include "errors.h"

namespace fulcrum::addon {

namespace {

std::string string_option(const Napi::Object& options, const char* key, const std::string& fallback) {
  Napi::Value value = options.Get(key);
  if (value.IsUndefined() || value.IsNull()) return fallback;
  if (!value.IsString()) throw Napi::TypeError::New(options.Env(), std::string("connection log option ") + key + " must be a string");
  return value.As<Napi::String>().Utf8Value();
}

double number_option(const Napi::Object& options, const char* key, double fallback, double min, double max) {
  Napi::Value value = options.Get(key);
  if (value.IsUndefined() || value.IsNull()) return fallback;
  if (!value.IsNumber()) throw Napi::TypeError::New(options.Env(), std::string("connection log option ") + key + " must be a number");
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= min && number <= max)) {
    throw Napi::RangeError::New(options.Env(), std::string("connection log option ") + key + " must be from " +
                                                   std::to_string(min) + " to " + std::to_string(max));
  }
  return number;
}

ConnectionLogSettings read_settings(const Napi::Object& options) {
  Napi::Env env = options.Env();
  ConnectionLogSettings settings;
  const std::string output = string_option(options, "output", "stdout");
  if (output == "off") {
    settings.output = ConnectionLogSettings::Output::kOff;
  } else if (output == "stdout") {
    settings.output = ConnectionLogSettings::Output::kStdout;
  } else if (output == "file") {
    settings.output = ConnectionLogSettings::Output::kFile;
  } else if (output == "syslog") {
    settings.output = ConnectionLogSettings::Output::kSyslog;
  } else {
    throw Napi::TypeError::New(env, "connection log option output must be off, stdout, file or syslog");
  }
  settings.path = string_option(options, "path", "");
  const std::string host = string_option(options, "syslogHost", "");
  if (!host.empty()) {
    const int port = static_cast<int>(number_option(options, "syslogPort", 514, 1, 65535));
    if (parse_socket_address(host, port, &settings.syslog_address) < 0) {
      throw Napi::TypeError::New(env, "connection log option syslogHost must be a numeric IP address");
    }
  }
  const std::string format = string_option(options, "format", "json");
  if (format != "json" && format != "text") throw Napi::TypeError::New(env, "connection log option format must be json or text");
  settings.text = format == "text";
  settings.sample = number_option(options, "sample", 1, 0, 1);
  settings.max_per_second = static_cast<uint32_t>(number_option(options, "maxPerSecond", 0, 0, 1e9));
  settings.interval_ms = static_cast<uint32_t>(number_option(options, "intervalMs", 0, 0, 7 * 86400e3));
  settings.facility = static_cast<uint8_t>(number_option(options, "facility", 16, 0, 23));
  settings.tag = string_option(options, "tag", "fulcrum");
  if ((settings.output == ConnectionLogSettings::Output::kFile ||
       (settings.output == ConnectionLogSettings::Output::kSyslog && host.empty())) &&
      settings.path.empty()) {
    throw Napi::TypeError::New(env, "connection log option path is required for this output");
  }
  return settings;
}

}  // namespace

Napi::Object connection_stats_layout(Napi::Env env) {
  const ConnectionStatsLayout layout = fulcrum::connection_stats_layout();
  Napi::Object out = Napi::Object::New(env);
  Napi::Array terminations = Napi::Array::New(env);
  for (const auto& entry : kTerminationNames) {
    terminations.Set(static_cast<uint32_t>(entry.value), std::string(entry.name));
  }
  out.Set("terminations", terminations);
  out.Set("terminationOffset", static_cast<double>(layout.termination_offset));
  Napi::Array histograms = Napi::Array::New(env);
  for (size_t h = 0; h < std::size(kHistogramSpecs); h++) {
    const HistogramSpec& spec = kHistogramSpecs[h];
    Napi::Object histogram = Napi::Object::New(env);
    histogram.Set("name", spec.name);
    Napi::Array bounds = Napi::Array::New(env, spec.bound_count);
    for (size_t i = 0; i < spec.bound_count; i++) {
      // Times in seconds, as Prometheus wants them; sizes in bytes.
      bounds.Set(static_cast<uint32_t>(i), static_cast<double>(spec.bounds[i]) / (spec.seconds ? 1e6 : 1));
    }
    histogram.Set("bounds", bounds);
    histogram.Set("seconds", spec.seconds);
    histogram.Set("offset", static_cast<double>(layout.histogram_offset[h]));
    histograms.Set(static_cast<uint32_t>(h), histogram);
  }
  out.Set("histograms", histograms);
  out.Set("wordsPerService", static_cast<double>(layout.words_per_service));
  return out;
}

Napi::Value EngineHandle::configure_connection_log(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ConnectionLogSettings settings = read_settings(options_argument(info, "configureConnectionLog options"));
  if (!engine_ || engine_->stopped()) throw errno_error(env, ESHUTDOWN, "configureConnectionLog on a stopped engine");
  const int result = engine_->connection_log().configure(settings);
  if (result < 0) {
    const std::string target = settings.syslog_address.family() != 0 ? format_socket_address(settings.syslog_address) : settings.path;
    throw errno_error(env, -result, "opening the connection log " + target);
  }
  return env.Undefined();
}

Napi::Value EngineHandle::reopen_connection_log(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!engine_ || engine_->stopped()) return env.Undefined();
  const int result = engine_->connection_log().reopen();
  if (result < 0) throw errno_error(env, -result, "reopening the connection log");
  return env.Undefined();
}

Napi::Value EngineHandle::connection_log_counters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  ConnectionLogCounters counters;
  if (engine_) counters = engine_->connection_log().counters();
  out.Set("written", static_cast<double>(counters.written));
  out.Set("dropped", static_cast<double>(counters.dropped));
  out.Set("overCap", static_cast<double>(counters.over_cap));
  out.Set("sampledOut", static_cast<double>(counters.sampled_out));
  out.Set("writeErrors", static_cast<double>(counters.write_errors));
  return out;
}

Napi::Value EngineHandle::connection_stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "connectionStats(slots) takes an array of service slots");
  Napi::Array slots = info[0].As<Napi::Array>();
  const size_t words = fulcrum::connection_stats_layout().words_per_service;
  Napi::Float64Array out = Napi::Float64Array::New(env, slots.Length() * words);
  if (!engine_) return out;
  const ConnectionStats& stats = engine_->connection_log().stats();
  std::vector<uint64_t> sums(words);
  for (uint32_t i = 0; i < slots.Length(); i++) {
    Napi::Value slot = slots.Get(i);
    if (!slot.IsNumber()) throw Napi::TypeError::New(env, "connectionStats: a slot must be a number");
    stats.sum(slot.As<Napi::Number>().Uint32Value(), sums.data());
    for (size_t w = 0; w < words; w++) out[i * words + w] = static_cast<double>(sums[w]);
  }
  return out;
}

}  // namespace fulcrum::addon
