// The environment cleanup hook every handle with native threads or sockets
// registers (Engine, VrrpSocket, bench Client and Server): when Node tears the
// environment down (process exit, a worker_thread terminated) before the GC
// has finalized the handle, the hook releases it, so threads are joined while
// the environment still exists. The handle's own release (close(), stop(),
// the destructor) removes the hook; releasing twice is the handle's to make
// harmless.
#pragma once

#include <node_api.h>

namespace fulcrum::addon {

class EnvCleanupHook {
 public:
  EnvCleanupHook() = default;
  EnvCleanupHook(const EnvCleanupHook&) = delete;
  EnvCleanupHook& operator=(const EnvCleanupHook&) = delete;
  ~EnvCleanupHook() { remove(); }

  // JS thread, once the owner holds what it must release: (owner->*Release)()
  // runs at environment teardown unless remove() came first. The hook lives
  // inside its owner (an ObjectWrap, never moved), so `this` stays valid.
  template <typename Owner, void (Owner::*Release)()>
  void add(napi_env env, Owner* owner) {
    env_ = env;
    owner_ = owner;
    release_ = [](void* o) { (static_cast<Owner*>(o)->*Release)(); };
    added_ = napi_add_env_cleanup_hook(env, run, this) == napi_ok;
  }

  // JS thread; idempotent. A no-op while the hook itself runs (the runtime
  // has already taken it off its list).
  void remove() {
    if (!added_) return;
    added_ = false;
    napi_remove_env_cleanup_hook(env_, run, this);
  }

 private:
  static void run(void* self) {
    auto* hook = static_cast<EnvCleanupHook*>(self);
    hook->added_ = false;
    hook->release_(hook->owner_);
  }

  napi_env env_ = nullptr;
  void* owner_ = nullptr;
  void (*release_)(void*) = nullptr;
  bool added_ = false;
};

}  // namespace fulcrum::addon
