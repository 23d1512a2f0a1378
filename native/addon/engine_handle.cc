#include "engine_handle.h"

#include <cstring>
#include <string>
#include <vector>

#include "errors.h"
#include "snapshot_fields.h"
#include "snapshot_reader.h"

namespace fulcrum::addon {

Napi::Function EngineHandle::define_class(Napi::Env env) {
  return DefineClass(env, "Engine",
                     {
                         InstanceMethod<&EngineHandle::apply>("apply"),
                         InstanceMethod<&EngineHandle::set_backend_state>("setBackendState"),
                         InstanceMethod<&EngineHandle::set_backend_weight>("setBackendWeight"),
                         InstanceMethod<&EngineHandle::close_backend_connections>("closeBackendConnections"),
                         InstanceMethod<&EngineHandle::backend_peak>("backendPeak"),
                         InstanceMethod<&EngineHandle::service_queue>("serviceQueue"),
                         InstanceMethod<&EngineHandle::udp_datapaths>("udpDatapaths"),
                         InstanceMethod<&EngineHandle::stop>("stop"),
                         InstanceAccessor<&EngineHandle::counters>("counters"),
                         InstanceAccessor<&EngineHandle::workers>("workers"),
                         InstanceMethod<&EngineHandle::take_sync>("takeSync"),
                         InstanceMethod<&EngineHandle::install_sync>("installSync"),
                         InstanceMethod<&EngineHandle::dump_sync>("dumpSync"),
                         InstanceMethod<&EngineHandle::configure_connection_log>("configureConnectionLog"),
                         InstanceMethod<&EngineHandle::reopen_connection_log>("reopenConnectionLog"),
                         InstanceMethod<&EngineHandle::connection_log_counters>("connectionLogCounters"),
                         InstanceMethod<&EngineHandle::connection_stats>("connectionStats"),
                         InstanceMethod<&EngineHandle::worker_loop_times>("workerLoopTimes"),
                         InstanceMethod<&EngineHandle::stall_worker_for_test>("stallWorkerForTest"),
                         InstanceMethod<&EngineHandle::adopt_listeners>("adoptListeners"),
                         InstanceMethod<&EngineHandle::listener_fds>("listenerFds"),
                         InstanceMethod<&EngineHandle::hand_over_udp_flows>("handOverUdpFlows"),
                     });
}

EngineHandle::EngineHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineHandle>(info) {
  Napi::Env env = info.Env();
  Napi::Object options = options_argument(info, "Engine options");
  Napi::Value workers = options.Get("workers");
  Napi::Value on_events = options.Get("onEvents");
  if (!workers.IsNumber() || workers.As<Napi::Number>().Int64Value() < 1 ||
      workers.As<Napi::Number>().Int64Value() > 1024) {
    throw Napi::TypeError::New(env, "Engine options.workers must be an integer from 1 to 1024");
  }
  if (!on_events.IsFunction()) throw Napi::TypeError::New(env, "Engine options.onEvents must be a function");
  // The connection budget (src/engine/fd-budget.ts); absent or 0: no cap.
  Napi::Value max_connections = options.Get("maxConnections");
  uint32_t budget = 0;
  if (!max_connections.IsUndefined()) {
    const double value = max_connections.IsNumber() ? max_connections.As<Napi::Number>().DoubleValue() : -1;
    if (value < 0 || value > 16777216 || value != static_cast<double>(static_cast<uint32_t>(value))) {
      throw Napi::TypeError::New(env, "Engine options.maxConnections must be an integer from 0 to 16777216");
    }
    budget = static_cast<uint32_t>(value);
  }

  // Unlimited queue (0): a call is made only when the sink goes from empty to
  // non-empty, so at most a few are ever queued, and a worker never blocks.
  events_tsfn_ = Napi::ThreadSafeFunction::New(env, on_events.As<Napi::Function>(), "fulcrum-events", 0, 1);
  events_tsfn_.Unref(env);  // events alone must not keep the process alive
  tsfn_live_ = true;

  EngineOptions engine_options;
  engine_options.workers = workers.As<Napi::Number>().Uint32Value();
  engine_options.max_connections = budget;
  Napi::ThreadSafeFunction tsfn = events_tsfn_;
  engine_options.wake_events = [tsfn](EventSink* sink) mutable {
    tsfn.NonBlockingCall([sink](Napi::Env call_env, Napi::Function callback) {
      deliver_events(call_env, callback, sink);
    });
  };
  int result = Engine::create(std::move(engine_options), &engine_);
  if (result < 0) {
    events_tsfn_.Release();
    tsfn_live_ = false;
    throw errno_error(env, -result, "starting the engine");
  }
  cleanup_.add<EngineHandle, &EngineHandle::shutdown>(env, this);
}

EngineHandle::~EngineHandle() { shutdown(); }

void EngineHandle::shutdown() {
  if (engine_) engine_->stop();  // joins workers: no event is pushed after this
  if (tsfn_live_) {
    events_tsfn_.Release();
    tsfn_live_ = false;
  }
  cleanup_.remove();
}

void EngineHandle::deliver_events(Napi::Env env, Napi::Function callback, EventSink* sink) {
  if (env == nullptr || callback.IsEmpty() || sink == nullptr) return;
  std::vector<Event> batch = sink->take();
  if (batch.empty()) return;
  Napi::Array array = Napi::Array::New(env, batch.size());
  for (uint32_t i = 0; i < batch.size(); i++) {
    const Event& event = batch[i];
    Napi::Object object = Napi::Object::New(env);
    object.Set("type", std::string(enum_name(kEventTypeNames, event.type)));
    object.Set("worker", event.worker);
    if (event.service_slot != kNoSlot) object.Set("serviceSlot", event.service_slot);
    if (event.backend_slot != kNoSlot) object.Set("backendSlot", event.backend_slot);
    if (event.error != 0) object.Set("code", errno_name(event.error));
    if (event.type == EventType::kClientRefused) {
      object.Set("client", event.client.text());
      // The admission counter's index: its name is in counterLayout.admission.
      object.Set("reason", event.reason);
      object.Set("suppressed", event.suppressed);
    }
    array.Set(i, object);
  }
  callback.Call({array});
}

Napi::Value EngineHandle::apply(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!engine_ || engine_->stopped()) throw errno_error(env, ESHUTDOWN, "apply on a stopped engine");
  std::vector<ServiceSpec> services;
  if (!read_snapshot(env, info[0], &services)) return env.Undefined();
  ApplyFailure failure;
  uint64_t generation = 0;
  int result = engine_->apply(std::move(services), &failure, &generation);
  if (result < 0) {
    Napi::Error error = errno_error(env, -result, failure.message);
    if (!failure.service.empty()) error.Set("service", failure.service);
    throw error;
  }
  return Napi::Number::New(env, static_cast<double>(generation));
}

namespace {

// Argument `index` of `method`: an integer from min to max (a TypeError, or a
// RangeError naming `what`, otherwise).
uint32_t integer_argument(const Napi::CallbackInfo& info, size_t index, const char* method, const char* what,
                          int64_t min, int64_t max) {
  if (!info[index].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(method) + ": " + what + " must be a number");
  const int64_t value = info[index].As<Napi::Number>().Int64Value();
  if (value < min || value > max) {
    throw Napi::RangeError::New(info.Env(), std::string(method) + ": " + what + " must be from " + std::to_string(min) +
                                                " to " + std::to_string(max));
  }
  return static_cast<uint32_t>(value);
}

uint32_t backend_slot_argument(const Napi::CallbackInfo& info, const char* method) {
  return integer_argument(info, 0, method, "slot", 0, kMaxBackends - 1);
}

}  // namespace

Napi::Value EngineHandle::set_backend_state(const Napi::CallbackInfo& info) {
  const uint32_t slot = backend_slot_argument(info, "setBackendState");
  const uint32_t state = integer_argument(info, 1, "setBackendState", "state", 0, kBackendStateCount - 1);
  if (engine_) engine_->set_backend_state(slot, static_cast<BackendState>(state));
  return info.Env().Undefined();
}

Napi::Value EngineHandle::set_backend_weight(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint32_t slot = backend_slot_argument(info, "setBackendWeight");
  const uint32_t weight = integer_argument(info, 1, "setBackendWeight", "weight", static_cast<int64_t>(kWeight.min),
                                           static_cast<int64_t>(kWeight.max));
  if (!engine_ || engine_->stopped()) throw errno_error(env, ESHUTDOWN, "setBackendWeight on a stopped engine");
  uint64_t generation = 0;
  const int result = engine_->set_backend_weight(slot, weight, &generation);
  if (result < 0) throw errno_error(env, -result, "setBackendWeight: no running backend in slot " + std::to_string(slot));
  return Napi::Number::New(env, static_cast<double>(generation));
}

Napi::Value EngineHandle::close_backend_connections(const Napi::CallbackInfo& info) {
  const uint32_t slot = backend_slot_argument(info, "closeBackendConnections");
  // Why they are closed, for their connection records: drain (the default), maint or removed.
  Termination why = Termination::kDrain;
  if (info[1].IsString()) {
    const std::string reason = info[1].As<Napi::String>().Utf8Value();
    if (reason == "maint") {
      why = Termination::kMaint;
    } else if (reason == "killed") {
      why = Termination::kKilled;
    } else if (reason == "removed") {
      why = Termination::kRemoved;
    } else if (reason != "drain") {
      throw Napi::TypeError::New(info.Env(), "closeBackendConnections: reason must be drain, maint, killed or removed");
    }
  }
  if (engine_) engine_->close_backend_connections(slot, why);
  return info.Env().Undefined();
}

// JS thread; read once per backend when the admin API builds its state.
Napi::Value EngineHandle::backend_peak(const Napi::CallbackInfo& info) {
  const uint32_t slot = backend_slot_argument(info, "backendPeak");
  return Napi::Number::New(info.Env(), engine_ ? engine_->backend_peak(slot) : 0);
}

// JS thread: what each UDP service runs on (udp_kernel_nat.h), with the
// kernel datapath's counters summed over CPUs.
Napi::Value EngineHandle::udp_datapaths(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array list = Napi::Array::New(env);
  if (!engine_) return list;
  static const char* const kStatNames[kKernelStatCount] = {
      "clientPackets", "clientBytes",      "replyPackets",     "replyBytes",          "newFlows",
      "movedFlows",    "passedNoBackend", "passedNoNatPort", "passedUnsupported", "dropped",
      "denied",        "overRate",         "completedFlows",  "repliesDropped"};
  uint32_t i = 0;
  for (const UdpDatapathStatus& status : engine_->udp_datapaths()) {
    Napi::Object item = Napi::Object::New(env);
    item.Set("service", status.service);
    item.Set("configured", std::string(enum_name(kUdpDatapathNames, status.configured)));
    item.Set("datapath", status.kernel ? "kernel" : "user");
    item.Set("reason", status.reason);
    item.Set("clientInterface", status.client_interface);
    item.Set("backendInterface", status.backend_interface);
    item.Set("flows", static_cast<double>(status.flows));
    item.Set("expired", static_cast<double>(status.expired));
    Napi::Object stats = Napi::Object::New(env);
    for (uint32_t s = 0; s < kKernelStatCount; s++) stats.Set(kStatNames[s], static_cast<double>(status.stats[s]));
    item.Set("stats", stats);
    list.Set(i++, item);
  }
  return list;
}

// JS thread; read once per service when the admin API builds its state.
Napi::Value EngineHandle::service_queue(const Napi::CallbackInfo& info) {
  const uint32_t slot = integer_argument(info, 0, "serviceQueue", "slot", 0, kMaxServices - 1);
  return Napi::Number::New(info.Env(), engine_ ? engine_->service_queued(slot) : 0);
}

// JS thread: the watchdog's liveness probe (src/systemd/), a few atomic loads.
Napi::Value EngineHandle::worker_loop_times(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array times = Napi::Array::New(env);
  if (!engine_) return times;
  const std::vector<uint64_t> values = engine_->worker_loop_times_ms();
  for (uint32_t i = 0; i < values.size(); i++) times.Set(i, static_cast<double>(values[i]));
  return times;
}

// JS thread; tests only: worker N's loop sleeps for ms (at most a minute).
Napi::Value EngineHandle::stall_worker_for_test(const Napi::CallbackInfo& info) {
  const uint32_t workers = engine_ ? engine_->worker_count() : 0;
  if (workers == 0) return info.Env().Undefined();
  const uint32_t index = integer_argument(info, 0, "stallWorkerForTest", "worker", 0, workers - 1);
  const uint32_t ms = integer_argument(info, 1, "stallWorkerForTest", "ms", 0, 60000);
  engine_->stall_worker_for_test(index, ms);
  return info.Env().Undefined();
}

Napi::Value EngineHandle::stop(const Napi::CallbackInfo& info) {
  shutdown();
  return info.Env().Undefined();
}

Napi::Value EngineHandle::counters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!counters_ref_.IsEmpty()) return counters_ref_.Value();
  // The ArrayBuffer shares ownership of the arena: it stays valid after stop()
  // and after this handle is collected.
  auto* owner = new std::shared_ptr<CounterArena>(engine_->counters());
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(
      env, (*owner)->data(), (*owner)->byte_length(),
      [](Napi::Env, void*, std::shared_ptr<CounterArena>* hint) { delete hint; }, owner);
  counters_ref_ = Napi::Persistent(buffer);
  return buffer;
}

Napi::Value EngineHandle::workers(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), engine_ ? engine_->worker_count() : 0);
}

Napi::Value EngineHandle::take_sync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SyncTakeStats stats;
  std::vector<SyncRecord> records;
  if (engine_ && !engine_->stopped()) records = engine_->take_sync(&stats);
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, records.size() * sizeof(SyncRecord));
  if (!records.empty()) std::memcpy(buffer.Data(), records.data(), records.size() * sizeof(SyncRecord));
  Napi::Object result = Napi::Object::New(env);
  result.Set("records", buffer);
  result.Set("dropped", Napi::Number::New(env, static_cast<double>(stats.dropped)));
  result.Set("dumpDropped", Napi::Number::New(env, static_cast<double>(stats.dump_dropped)));
  result.Set("dumpPending", Napi::Number::New(env, stats.dump_pending));
  return result;
}

Napi::Value EngineHandle::dump_sync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // 0 <= from < to <= kDumpBuckets.
  const uint32_t from = integer_argument(info, 0, "dumpSync", "from", 0, kDumpBuckets - 1);
  const uint32_t to = integer_argument(info, 1, "dumpSync", "to", static_cast<int64_t>(from) + 1, kDumpBuckets);
  if (!engine_ || engine_->stopped()) throw errno_error(env, ESHUTDOWN, "dumpSync on a stopped engine");
  uint32_t appended = 0;
  const int result = engine_->dump_sync(from, to, &appended);
  if (result < 0) throw errno_error(env, -result, "dumpSync");
  return Napi::Number::New(env, appended);
}

Napi::Value EngineHandle::install_sync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(env, "installSync(records) takes a Uint8Array of 32-byte records");
  }
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  if (bytes.ByteLength() % sizeof(SyncRecord) != 0) {
    throw Napi::RangeError::New(env, "installSync: length is not a multiple of 32");
  }
  if (!engine_ || engine_->stopped()) return Napi::Number::New(env, 0);
  // Copied: the JS buffer's alignment is not guaranteed.
  std::vector<SyncRecord> records(bytes.ByteLength() / sizeof(SyncRecord));
  if (!records.empty()) std::memcpy(records.data(), bytes.Data(), bytes.ByteLength());
  return Napi::Number::New(env, engine_->install_sync(records.data(), records.size()));
}

Napi::Value EngineHandle::adopt_listeners(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!engine_ || engine_->stopped()) throw errno_error(env, ESHUTDOWN, "adoptListeners on a stopped engine");
  if (!info[0].IsString() || !info[1].IsArray()) throw Napi::TypeError::New(env, "adoptListeners(key, fds[])");
  Napi::Array array = info[1].As<Napi::Array>();
  std::vector<int> fds;
  for (uint32_t i = 0; i < array.Length(); i++) {
    Napi::Value value = array.Get(i);
    if (!value.IsNumber() || value.As<Napi::Number>().Int32Value() < 0) {
      throw Napi::TypeError::New(env, "adoptListeners: fds must be non-negative integers");
    }
    fds.push_back(value.As<Napi::Number>().Int32Value());
  }
  int result = engine_->adopt_listeners(info[0].As<Napi::String>().Utf8Value(), std::move(fds));
  if (result < 0) throw errno_error(env, -result, "adopting the listeners of " + info[0].As<Napi::String>().Utf8Value());
  return env.Undefined();
}

Napi::Value EngineHandle::listener_fds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  if (!engine_ || engine_->stopped()) return out;
  uint32_t index = 0;
  for (const auto& [key, fds] : engine_->listener_fds()) {
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("key", key);
    Napi::Array list = Napi::Array::New(env, fds.size());
    for (uint32_t i = 0; i < fds.size(); i++) list.Set(i, fds[i]);
    entry.Set("fds", list);
    out.Set(index++, entry);
  }
  return out;
}

Napi::Value EngineHandle::hand_over_udp_flows(const Napi::CallbackInfo& info) {
  if (engine_ && !engine_->stopped()) engine_->hand_over_udp_flows();
  return info.Env().Undefined();
}

}  // namespace fulcrum::addon
