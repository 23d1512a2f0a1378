#include <string>

#include "bench_handles.h"
#include "errors.h"
#include "../bench/protocol.h"

namespace fulcrum::addon {

Napi::Object latency_to_js(Napi::Env env, const bench::LatencySummary& s);

Napi::Function BenchServerHandle::define_class(Napi::Env env) {
  return DefineClass(env, "BenchServer",
                     {
                         InstanceAccessor<&BenchServerHandle::port>("port"),
                         InstanceMethod<&BenchServerHandle::stats>("stats"),
                         InstanceMethod<&BenchServerHandle::take_log>("takeLog"),
                         InstanceMethod<&BenchServerHandle::close>("close"),
                     });
}

BenchServerHandle::BenchServerHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BenchServerHandle>(info) {
  Napi::Env env = info.Env();
  Napi::Object options = options_argument(info, "bench server options");
  bench::ServerConfig config;
  if (options.Get("host").IsString()) config.host = options.Get("host").As<Napi::String>().Utf8Value();
  if (options.Get("port").IsNumber()) config.port = options.Get("port").As<Napi::Number>().Int32Value();
  if (options.Get("threads").IsNumber()) config.threads = options.Get("threads").As<Napi::Number>().Int32Value();
  const int result = bench::Server::create(config, &server_);
  if (result < 0) {
    throw errno_error(env, -result, "bench server: listening on " + config.host + ":" + std::to_string(config.port));
  }
  cleanup_.add<BenchServerHandle, &BenchServerHandle::release>(env, this);
}

BenchServerHandle::~BenchServerHandle() { release(); }

void BenchServerHandle::release() {
  if (server_) server_->stop();
  server_.reset();
  cleanup_.remove();
}

Napi::Value BenchServerHandle::port(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), server_ ? server_->port() : 0);
}

Napi::Value BenchServerHandle::stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  const bench::ServerStats s = server_ ? server_->stats() : bench::ServerStats{};
  o.Set("sessions", static_cast<double>(s.sessions));
  o.Set("connections", static_cast<double>(s.connections));
  o.Set("protocolErrors", static_cast<double>(s.protocol_errors));
  o.Set("datagrams", static_cast<double>(s.datagrams));
  o.Set("malformedDatagrams", static_cast<double>(s.malformed_datagrams));
  o.Set("unknownSessionDatagrams", static_cast<double>(s.unknown_session_datagrams));
  return o;
}

Napi::Value BenchServerHandle::take_log(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<std::string> lines = server_ ? server_->take_log() : std::vector<std::string>{};
  Napi::Array array = Napi::Array::New(env, lines.size());
  for (uint32_t i = 0; i < lines.size(); i++) array.Set(i, lines[i]);
  return array;
}

Napi::Value BenchServerHandle::close(const Napi::CallbackInfo& info) {
  release();
  return info.Env().Undefined();
}

namespace {

// testing.latencySummary(samples: Float64Array of nanoseconds): the summary
// the client reports, computed by the same code (nearest-rank percentiles).
Napi::Value latency_summary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    throw Napi::TypeError::New(env, "latencySummary(samples: Float64Array)");
  }
  Napi::Float64Array array = info[0].As<Napi::Float64Array>();
  std::vector<uint64_t> samples(array.ElementLength());
  for (size_t i = 0; i < samples.size(); i++) samples[i] = static_cast<uint64_t>(array[i]);
  bench::LatencyRecorder recorder;
  for (uint64_t s : samples) recorder.record(s);
  std::vector<uint64_t> recorded;
  recorder.append_all(&recorded);
  return latency_to_js(env, bench::summarize_samples(&recorded));
}

}  // namespace

Napi::Object bench_exports(Napi::Env env) {
  Napi::Object bench = Napi::Object::New(env);
  bench.Set("Client", BenchClientHandle::define_class(env));
  bench.Set("Server", BenchServerHandle::define_class(env));
  bench.Set("protocolVersion", static_cast<double>(bench::kProtocolVersion));
  Napi::Object testing = Napi::Object::New(env);
  testing.Set("latencySummary", Napi::Function::New(env, latency_summary, "latencySummary"));
  bench.Set("testing", testing);
  return bench;
}

}  // namespace fulcrum::addon
