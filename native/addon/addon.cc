// Module entry: exports the Engine class and the counter layout, so the
// TypeScript side reads counters by offsets the native code defines instead of
// copies of them.
#include <napi.h>

#include "../engine/counters.h"
#include "engine_handle.h"

namespace fulcrum::addon {

namespace {

Napi::Object counter_layout(Napi::Env env) {
  auto fields = [&](std::initializer_list<std::pair<const char*, uint32_t>> entries) {
    Napi::Object object = Napi::Object::New(env);
    for (const auto& [name, index] : entries) object.Set(name, index);
    return object;
  };
  // All offsets and strides are in u64 words.
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("version", kCounterLayoutVersion);
  layout.Set("globalOffset", 0);
  layout.Set("firstWorkerOffset", static_cast<double>(kLineWords));
  layout.Set("workerStride", static_cast<double>(kWorkerBlockWords));
  layout.Set("serviceOffset", static_cast<double>(kServiceOffsetWords));
  layout.Set("backendOffset", static_cast<double>(kBackendOffsetWords));
  layout.Set("slotStride", static_cast<double>(kLineWords));
  layout.Set("maxServices", kMaxServices);
  layout.Set("maxBackends", kMaxBackends);
  layout.Set("global", fields({{"eventsDropped", kEventsDropped}}));
  layout.Set("worker", fields({{"pooledPipes", kPooledPipes},
                               {"acceptPauses", kAcceptPauses},
                               {"appliedGeneration", kAppliedGeneration}}));
  layout.Set("traffic", fields({{"accepted", kAccepted},
                                {"active", kActive},
                                {"failed", kFailed},
                                {"bytesIn", kBytesIn},
                                {"bytesOut", kBytesOut}}));
  return layout;
}

}  // namespace

Napi::Object init(Napi::Env env, Napi::Object exports) {
  exports.Set("Engine", EngineHandle::define_class(env));
  exports.Set("counterLayout", counter_layout(env));
  return exports;
}

}  // namespace fulcrum::addon

static Napi::Object init_fulcrum(Napi::Env env, Napi::Object exports) { return fulcrum::addon::init(env, exports); }

NODE_API_MODULE(fulcrum, init_fulcrum)
