// Reads the snapshot object the TypeScript engine wrapper builds into the
// engine's ServiceSpecs. TS validates the config; this re-checks the shape so
// a wrong call fails with a TypeError instead of undefined behaviour.
//
// Snapshot shape (see src/engine/native.ts):
//   { services: [{ slot, name, listenHost, listenPort, balance: 'roundrobin'|'weighted',
//                  connectTimeoutMs, idleTimeoutMs, retries,
//                  backends: [{ slot, host, port, weight }] }] }
#pragma once

#include <napi.h>

#include <vector>

#include "../engine/service.h"

namespace fulcrum::addon {

// Returns false with a pending JS exception when the object is malformed.
bool read_snapshot(Napi::Env env, Napi::Value value, std::vector<ServiceSpec>* out);

}  // namespace fulcrum::addon
