#include "engine_handle.h"

#include <arpa/inet.h>

#include <cstring>
#include <string>
#include <vector>

#include "errors.h"
#include "snapshot_reader.h"

namespace fulcrum::addon {

namespace {

const char* event_type_name(EventType type) {
  switch (type) {
    case EventType::kConnectFailed:
      return "connect_failed";
    case EventType::kListenerError:
      return "listener_error";
    case EventType::kAcceptPaused:
      return "accept_paused";
    case EventType::kAcceptResumed:
      return "accept_resumed";
    case EventType::kSourceBindFailed:
      return "source_bind_failed";
    case EventType::kClientRefused:
      return "client_refused";
  }
  return "unknown";
}

// "192.0.2.1:5678" or "[2001:db8::1]:5678".
std::string client_text(const ClientAddress& client) {
  char host[INET6_ADDRSTRLEN] = "?";
  inet_ntop(client.family, client.bytes, host, sizeof host);
  const std::string port = std::to_string(client.port);
  return client.family == AF_INET6 ? "[" + std::string(host) + "]:" + port : std::string(host) + ":" + port;
}

}  // namespace

Napi::Function EngineHandle::define_class(Napi::Env env) {
  return DefineClass(env, "Engine",
                     {
                         InstanceMethod<&EngineHandle::apply>("apply"),
                         InstanceMethod<&EngineHandle::set_backend_state>("setBackendState"),
                         InstanceMethod<&EngineHandle::set_backend_weight>("setBackendWeight"),
                         InstanceMethod<&EngineHandle::close_backend_connections>("closeBackendConnections"),
                         InstanceMethod<&EngineHandle::stop>("stop"),
                         InstanceAccessor<&EngineHandle::counters>("counters"),
                         InstanceAccessor<&EngineHandle::workers>("workers"),
                         InstanceMethod<&EngineHandle::take_sync>("takeSync"),
                         InstanceMethod<&EngineHandle::install_sync>("installSync"),
                         InstanceMethod<&EngineHandle::dump_sync>("dumpSync"),
                     });
}

EngineHandle::EngineHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineHandle>(info) {
  Napi::Env env = info.Env();
  env_ = env;
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "Engine options must be an object");
  Napi::Object options = info[0].As<Napi::Object>();
  Napi::Value workers = options.Get("workers");
  Napi::Value on_events = options.Get("onEvents");
  if (!workers.IsNumber() || workers.As<Napi::Number>().Int64Value() < 1 ||
      workers.As<Napi::Number>().Int64Value() > 1024) {
    throw Napi::TypeError::New(env, "Engine options.workers must be an integer from 1 to 1024");
  }
  if (!on_events.IsFunction()) throw Napi::TypeError::New(env, "Engine options.onEvents must be a function");

  // Unlimited queue (0): a call is made only when the sink goes from empty to
  // non-empty, so at most a few are ever queued, and a worker never blocks.
  events_tsfn_ = Napi::ThreadSafeFunction::New(env, on_events.As<Napi::Function>(), "fulcrum-events", 0, 1);
  events_tsfn_.Unref(env);  // events alone must not keep the process alive
  tsfn_live_ = true;

  EngineOptions engine_options;
  engine_options.workers = workers.As<Napi::Number>().Uint32Value();
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
  napi_add_env_cleanup_hook(env, on_env_cleanup, this);
  cleanup_hook_added_ = true;
}

EngineHandle::~EngineHandle() { shutdown(); }

void EngineHandle::on_env_cleanup(void* self) {
  auto* handle = static_cast<EngineHandle*>(self);
  handle->cleanup_hook_added_ = false;  // the runtime removes it as it runs it
  handle->shutdown();
}

void EngineHandle::shutdown() {
  if (engine_) engine_->stop();  // joins workers: no event is pushed after this
  if (tsfn_live_) {
    events_tsfn_.Release();
    tsfn_live_ = false;
  }
  if (cleanup_hook_added_) {
    napi_remove_env_cleanup_hook(env_, on_env_cleanup, this);
    cleanup_hook_added_ = false;
  }
}

void EngineHandle::deliver_events(Napi::Env env, Napi::Function callback, EventSink* sink) {
  if (env == nullptr || callback.IsEmpty() || sink == nullptr) return;
  std::vector<Event> batch = sink->take();
  if (batch.empty()) return;
  Napi::Array array = Napi::Array::New(env, batch.size());
  for (uint32_t i = 0; i < batch.size(); i++) {
    const Event& event = batch[i];
    Napi::Object object = Napi::Object::New(env);
    object.Set("type", event_type_name(event.type));
    object.Set("worker", event.worker);
    if (event.service_slot != kNoSlot) object.Set("serviceSlot", event.service_slot);
    if (event.backend_slot != kNoSlot) object.Set("backendSlot", event.backend_slot);
    if (event.error != 0) object.Set("code", errno_name(event.error));
    if (event.type == EventType::kClientRefused) {
      object.Set("client", client_text(event.client));
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

Napi::Value EngineHandle::set_backend_state(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "setBackendState(slot, state) takes two numbers");
  }
  const int64_t slot = info[0].As<Napi::Number>().Int64Value();
  const int64_t state = info[1].As<Napi::Number>().Int64Value();
  if (slot < 0 || slot >= kMaxBackends || state < 0 || state >= kBackendStateCount) {
    throw Napi::RangeError::New(env, "setBackendState: slot or state out of range");
  }
  if (engine_) engine_->set_backend_state(static_cast<uint32_t>(slot), static_cast<BackendState>(state));
  return env.Undefined();
}

Napi::Value EngineHandle::set_backend_weight(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "setBackendWeight(slot, weight) takes two numbers");
  }
  const int64_t slot = info[0].As<Napi::Number>().Int64Value();
  const int64_t weight = info[1].As<Napi::Number>().Int64Value();
  if (slot < 0 || slot >= kMaxBackends || weight < 0 || weight > 256) {
    throw Napi::RangeError::New(env, "setBackendWeight: slot out of range or weight not 0..256");
  }
  if (!engine_ || engine_->stopped()) throw errno_error(env, ESHUTDOWN, "setBackendWeight on a stopped engine");
  uint64_t generation = 0;
  const int result = engine_->set_backend_weight(static_cast<uint32_t>(slot), static_cast<uint32_t>(weight), &generation);
  if (result < 0) throw errno_error(env, -result, "setBackendWeight: no running backend in slot " + std::to_string(slot));
  return Napi::Number::New(env, static_cast<double>(generation));
}

Napi::Value EngineHandle::close_backend_connections(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "closeBackendConnections(slot) takes a number");
  const int64_t slot = info[0].As<Napi::Number>().Int64Value();
  if (slot < 0 || slot >= kMaxBackends) throw Napi::RangeError::New(env, "closeBackendConnections: slot out of range");
  if (engine_) engine_->close_backend_connections(static_cast<uint32_t>(slot));
  return env.Undefined();
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
  if (!info[0].IsNumber() || !info[1].IsNumber()) throw Napi::TypeError::New(env, "dumpSync(from, to) takes two numbers");
  const int64_t from = info[0].As<Napi::Number>().Int64Value();
  const int64_t to = info[1].As<Napi::Number>().Int64Value();
  if (from < 0 || to <= from || to > kDumpBuckets) {
    throw Napi::RangeError::New(env, "dumpSync: expected 0 <= from < to <= " + std::to_string(kDumpBuckets));
  }
  if (!engine_ || engine_->stopped()) throw errno_error(env, ESHUTDOWN, "dumpSync on a stopped engine");
  uint32_t appended = 0;
  const int result = engine_->dump_sync(static_cast<uint32_t>(from), static_cast<uint32_t>(to), &appended);
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

}  // namespace fulcrum::addon
