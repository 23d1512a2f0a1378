#include <string>

#include "bench_handles.h"
#include "errors.h"

namespace fulcrum::addon {

namespace {

uint32_t option_u32(Napi::Object options, const char* name, uint32_t fallback, uint32_t min, uint32_t max) {
  Napi::Value value = options.Get(name);
  if (value.IsUndefined()) return fallback;
  if (!value.IsNumber()) throw Napi::TypeError::New(options.Env(), std::string("bench client option ") + name + " must be a number");
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= min && number <= max) || number != static_cast<double>(static_cast<uint64_t>(number))) {
    throw Napi::RangeError::New(options.Env(), std::string("bench client option ") + name + " must be an integer from " +
                                                   std::to_string(min) + " to " + std::to_string(max));
  }
  return static_cast<uint32_t>(number);
}

const char* unit_kind_name(bench::UnitKind kind) {
  switch (kind) {
    case bench::UnitKind::kSend:
      return "send";
    case bench::UnitKind::kReceive:
      return "receive";
    case bench::UnitKind::kPingPong:
      return "ping-pong";
    case bench::UnitKind::kConnrate:
      return "connrate";
    case bench::UnitKind::kUdpFlow:
      return "udp-flow";
  }
  return "unknown";
}

Napi::Array units_to_js(Napi::Env env, const std::vector<bench::UnitSnapshot>& units) {
  Napi::Array array = Napi::Array::New(env, units.size());
  for (uint32_t i = 0; i < units.size(); i++) {
    const bench::UnitSnapshot& u = units[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("kind", unit_kind_name(u.kind));
    o.Set("bytesSent", static_cast<double>(u.bytes_sent));
    o.Set("bytesReceived", static_cast<double>(u.bytes_received));
    o.Set("messagesSent", static_cast<double>(u.messages_sent));
    o.Set("messagesReceived", static_cast<double>(u.messages_received));
    o.Set("lost", static_cast<double>(u.lost));
    o.Set("closedCleanly", u.closed_cleanly);
    array.Set(i, o);
  }
  return array;
}

Napi::Object errors_to_js(Napi::Env env, const std::map<int, uint64_t>& errors) {
  Napi::Object o = Napi::Object::New(env);
  for (const auto& [error, count] : errors) o.Set(errno_name(error), static_cast<double>(count));
  return o;
}

}  // namespace

Napi::Object latency_to_js(Napi::Env env, const bench::LatencySummary& s);
Napi::Object latency_to_js(Napi::Env env, const bench::LatencySummary& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("count", static_cast<double>(s.count));
  o.Set("dropped", static_cast<double>(s.dropped));
  o.Set("minNs", static_cast<double>(s.min_ns));
  o.Set("meanNs", static_cast<double>(s.mean_ns));
  o.Set("p50Ns", static_cast<double>(s.p50_ns));
  o.Set("p99Ns", static_cast<double>(s.p99_ns));
  o.Set("p999Ns", static_cast<double>(s.p999_ns));
  o.Set("maxNs", static_cast<double>(s.max_ns));
  return o;
}

// start() or stop() off the JS thread; resolves or rejects a promise. The
// handle stays referenced (cannot be collected) until it completes.
class BenchClientHandle::Operation : public Napi::AsyncWorker {
 public:
  Operation(Napi::Env env, BenchClientHandle* handle, bool starting)
      : Napi::AsyncWorker(env, starting ? "fulcrum-bench-start" : "fulcrum-bench-stop"),
        handle_(handle),
        client_(handle->client_.get()),
        starting_(starting),
        deferred_(Napi::Promise::Deferred::New(env)) {
    handle_->Ref();
  }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    if (starting_) result_ = client_->start();
    else client_->stop();
  }
  void OnOK() override {
    finish();
    if (result_ < 0) deferred_.Reject(errno_error(Env(), -result_, "bench client: connecting").Value());
    else deferred_.Resolve(Env().Undefined());
  }
  void OnError(const Napi::Error& error) override {
    finish();
    deferred_.Reject(error.Value());
  }

 private:
  void finish() {
    handle_->busy_ = false;
    handle_->Unref();
  }
  BenchClientHandle* handle_;
  bench::Client* client_;
  bool starting_;
  int result_ = 0;
  Napi::Promise::Deferred deferred_;
};

Napi::Function BenchClientHandle::define_class(Napi::Env env) {
  return DefineClass(env, "BenchClient",
                     {
                         InstanceMethod<&BenchClientHandle::start>("start"),
                         InstanceMethod<&BenchClientHandle::snapshot>("snapshot"),
                         InstanceMethod<&BenchClientHandle::stop>("stop"),
                         InstanceMethod<&BenchClientHandle::result>("result"),
                     });
}

BenchClientHandle::BenchClientHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BenchClientHandle>(info) {
  Napi::Env env = info.Env();
  Napi::Object options = options_argument(info, "bench client options");
  bench::ClientConfig config;
  const std::string workload = options.Get("workload").ToString().Utf8Value();
  if (workload == "tcp-throughput") config.workload = bench::Workload::kTcpThroughput;
  else if (workload == "tcp-connrate") config.workload = bench::Workload::kTcpConnrate;
  else if (workload == "tcp-latency") config.workload = bench::Workload::kTcpLatency;
  else if (workload == "udp-pps") config.workload = bench::Workload::kUdpPps;
  else if (workload == "udp-latency") config.workload = bench::Workload::kUdpLatency;
  else throw Napi::TypeError::New(env, "bench client: unknown workload '" + workload + "'");
  const std::string direction = options.Has("direction") ? options.Get("direction").ToString().Utf8Value() : "send";
  if (direction == "send") config.direction = bench::Direction::kSend;
  else if (direction == "receive") config.direction = bench::Direction::kReceive;
  else if (direction == "both") config.direction = bench::Direction::kBoth;
  else throw Napi::TypeError::New(env, "bench client: direction must be send, receive or both");
  if (!options.Get("host").IsString()) throw Napi::TypeError::New(env, "bench client option host must be a string");
  config.host = options.Get("host").As<Napi::String>().Utf8Value();
  config.port = static_cast<int>(option_u32(options, "port", 0, 1, 65535));
  config.session = option_u32(options, "session", 0, 0, UINT32_MAX);
  config.parallel = option_u32(options, "parallel", 1, 1, 128);
  config.concurrency = option_u32(options, "concurrency", 16, 1, 10000);
  config.message_size = option_u32(options, "messageSize", 64, 1, 1024 * 1024);
  config.flows = option_u32(options, "flows", 1, 1, 1024);
  config.rate = option_u32(options, "rate", 0, 0, UINT32_MAX);
  config.threads = option_u32(options, "threads", 0, 0, 64);
  config.connect_timeout_ms = static_cast<int>(option_u32(options, "connectTimeoutMs", 3000, 1, 600000));
  config.drain_timeout_ms = static_cast<int>(option_u32(options, "drainTimeoutMs", 10000, 1, 600000));
  config.response_timeout_ms = static_cast<int>(option_u32(options, "responseTimeoutMs", 1000, 1, 600000));
  const int result = bench::Client::create(config, &client_);
  if (result < 0) throw errno_error(env, -result, "bench client: invalid options (address or sizes)");
  cleanup_.add<BenchClientHandle, &BenchClientHandle::release>(env, this);
}

BenchClientHandle::~BenchClientHandle() { release(); }

void BenchClientHandle::release() {
  // An operation in flight holds a reference to this handle, so the
  // destructor never runs during one; at env teardown the runtime waits for
  // libuv's work queue before cleanup hooks.
  if (client_) client_->stop();
  client_.reset();
  cleanup_.remove();
}

Napi::Value BenchClientHandle::run_operation(const Napi::CallbackInfo& info, bool starting) {
  Napi::Env env = info.Env();
  if (!client_) throw Napi::Error::New(env, "bench client: released");
  if (busy_) throw Napi::Error::New(env, "bench client: a start() or stop() is still running");
  if (starting && started_) throw Napi::Error::New(env, "bench client: already started");
  if (starting) started_ = true;
  busy_ = true;
  auto* operation = new Operation(env, this, starting);
  Napi::Promise promise = operation->promise();
  operation->Queue();
  return promise;
}

Napi::Value BenchClientHandle::start(const Napi::CallbackInfo& info) { return run_operation(info, true); }
Napi::Value BenchClientHandle::stop(const Napi::CallbackInfo& info) { return run_operation(info, false); }

Napi::Value BenchClientHandle::snapshot(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!client_ || busy_) throw Napi::Error::New(env, "bench client: snapshot() needs a started client, not during start() or stop()");
  const bench::ClientSnapshot snap = client_->snapshot();
  Napi::Object o = Napi::Object::New(env);
  o.Set("elapsedNs", static_cast<double>(snap.elapsed_ns));
  o.Set("units", units_to_js(env, snap.units));
  o.Set("intervalLatency", latency_to_js(env, snap.interval_latency));
  o.Set("errors", errors_to_js(env, snap.errors));
  return o;
}

Napi::Value BenchClientHandle::result(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!client_ || busy_) throw Napi::Error::New(env, "bench client: result() needs a stopped client");
  const bench::ClientResult r = client_->result();
  Napi::Object o = Napi::Object::New(env);
  o.Set("durationNs", static_cast<double>(r.duration_ns));
  o.Set("units", units_to_js(env, r.units));
  o.Set("latency", latency_to_js(env, r.latency));
  o.Set("errors", errors_to_js(env, r.errors));
  return o;
}

}  // namespace fulcrum::addon
