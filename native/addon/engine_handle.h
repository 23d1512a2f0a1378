// The JS class `Engine` of the addon: a thin wrapper that owns a
// fulcrum::Engine, converts arguments and results, and delivers worker events
// to a JS callback through one thread-safe function.
//
// JS API (typed in src/engine/native.ts):
//   new Engine({ workers, onEvents(events[]) })
//   engine.apply(snapshot) -> generation   throws Error{code: errno name, service?}
//   engine.setBackendState(slot, state)    state: 0 up, 1 down, 2 drain, 3 maint
//   engine.stop()                          idempotent; joins the workers
//   engine.counters                        ArrayBuffer over the counter arena
//   engine.workers                         number of worker threads
//   engine.takeSync() -> {records: ArrayBuffer, dropped, dumpDropped, dumpPending}
//                                          32-byte SyncRecords (sync_journal.h)
//   engine.installSync(Uint8Array) -> installed            the same records, from peers
//   engine.dumpSync(from, to) -> appended  a round of a full copy for peers (Engine::dump_sync)
//   engine.closeBackendConnections(slot, reason?)  reason: drain (default), maint, killed, removed
//   engine.configureConnectionLog / reopenConnectionLog / connectionLogCounters /
//   connectionStats                        the connection log (connection_log_glue.cc)
//   engine.adoptListeners(key, fds[])      sockets an upgrade handed over, used by the next apply
//   engine.listenerFds() -> [{key, fds}]   every listening socket, to hand over on upgrade
#pragma once

#include <napi.h>

#include <memory>

#include "../engine/engine.h"
#include "env_cleanup.h"

namespace fulcrum::addon {

class EngineHandle : public Napi::ObjectWrap<EngineHandle> {
 public:
  static Napi::Function define_class(Napi::Env env);
  explicit EngineHandle(const Napi::CallbackInfo& info);
  ~EngineHandle() override;

 private:
  Napi::Value apply(const Napi::CallbackInfo& info);
  Napi::Value set_backend_state(const Napi::CallbackInfo& info);
  Napi::Value set_backend_weight(const Napi::CallbackInfo& info);
  Napi::Value close_backend_connections(const Napi::CallbackInfo& info);
  Napi::Value backend_peak(const Napi::CallbackInfo& info);
  Napi::Value service_queue(const Napi::CallbackInfo& info);
  Napi::Value udp_datapaths(const Napi::CallbackInfo& info);
  Napi::Value stop(const Napi::CallbackInfo& info);
  Napi::Value counters(const Napi::CallbackInfo& info);
  Napi::Value workers(const Napi::CallbackInfo& info);
  Napi::Value take_sync(const Napi::CallbackInfo& info);
  Napi::Value install_sync(const Napi::CallbackInfo& info);
  Napi::Value dump_sync(const Napi::CallbackInfo& info);
  // The connection log (connection_log_glue.cc).
  Napi::Value configure_connection_log(const Napi::CallbackInfo& info);
  Napi::Value reopen_connection_log(const Napi::CallbackInfo& info);
  Napi::Value connection_log_counters(const Napi::CallbackInfo& info);
  Napi::Value connection_stats(const Napi::CallbackInfo& info);
  Napi::Value worker_loop_times(const Napi::CallbackInfo& info);
  Napi::Value stall_worker_for_test(const Napi::CallbackInfo& info);
  // Upgrade: sockets handed over by the previous Fulcrum, and ours to hand on.
  Napi::Value adopt_listeners(const Napi::CallbackInfo& info);
  Napi::Value listener_fds(const Napi::CallbackInfo& info);
  Napi::Value hand_over_udp_flows(const Napi::CallbackInfo& info);

  // Stops the engine and releases the thread-safe function. Safe to call more
  // than once, from stop(), the GC finalizer or the environment cleanup hook.
  void shutdown();
  // JS thread: hands the queued events to the onEvents callback.
  static void deliver_events(Napi::Env env, Napi::Function callback, EventSink* sink);

  std::unique_ptr<Engine> engine_;
  Napi::ThreadSafeFunction events_tsfn_;
  bool tsfn_live_ = false;
  Napi::Reference<Napi::ArrayBuffer> counters_ref_;
  EnvCleanupHook cleanup_;
};

}  // namespace fulcrum::addon
