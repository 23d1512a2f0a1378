// The JS side of the bench harness (native/bench): classes BenchClient and
// BenchServer and a testing hook, exported as `bench` by addon.cc.
//
// JS API (typed in src/engine/native.ts):
//   new bench.Client(options)         throws Error{code: 'EINVAL'} on bad options
//   client.start(): Promise<void>     connects and starts the load threads
//   client.snapshot()                 counters so far, latency since the last snapshot
//   client.stop(): Promise<void>      stops, drains TCP streams, joins threads
//   client.result()                   totals (after stop)
//   new bench.Server({host, port, threads})  binds and starts; throws EADDRINUSE...
//   server.port, server.stats(), server.takeLog(), server.close()
//   bench.testing.latencySummary(Float64Array of ns)  the recorder's percentiles
#pragma once

#include <napi.h>

#include <memory>

#include "../bench/client.h"
#include "../bench/server.h"
#include "env_cleanup.h"

namespace fulcrum::addon {

class BenchClientHandle : public Napi::ObjectWrap<BenchClientHandle> {
 public:
  static Napi::Function define_class(Napi::Env env);
  explicit BenchClientHandle(const Napi::CallbackInfo& info);
  ~BenchClientHandle() override;

  // Runs on a libuv worker thread: start or stop (both block).
  class Operation;

 private:
  Napi::Value start(const Napi::CallbackInfo& info);
  Napi::Value snapshot(const Napi::CallbackInfo& info);
  Napi::Value stop(const Napi::CallbackInfo& info);
  Napi::Value result(const Napi::CallbackInfo& info);
  Napi::Value run_operation(const Napi::CallbackInfo& info, bool starting);
  void release();

  std::unique_ptr<bench::Client> client_;
  bool busy_ = false;
  bool started_ = false;
  EnvCleanupHook cleanup_;
};

class BenchServerHandle : public Napi::ObjectWrap<BenchServerHandle> {
 public:
  static Napi::Function define_class(Napi::Env env);
  explicit BenchServerHandle(const Napi::CallbackInfo& info);
  ~BenchServerHandle() override;

 private:
  Napi::Value port(const Napi::CallbackInfo& info);
  Napi::Value stats(const Napi::CallbackInfo& info);
  Napi::Value take_log(const Napi::CallbackInfo& info);
  Napi::Value close(const Napi::CallbackInfo& info);
  void release();

  std::unique_ptr<bench::Server> server_;
  EnvCleanupHook cleanup_;
};

// { Client, Server, testing: { latencySummary } }
Napi::Object bench_exports(Napi::Env env);

}  // namespace fulcrum::addon
