// Reads the snapshot object the TypeScript engine wrapper builds into the
// engine's ServiceSpecs. TS validates the config; this re-checks the shape so
// a wrong call fails with a TypeError instead of undefined behaviour.
//
// Snapshot shape: NativeSnapshot in src/engine/native.ts (built by
// src/engine/snapshot.ts). Every key is required: a feature that is off is
// null (acceptProxy, sticky, clientLimits), never absent, so no value the
// engine runs with comes from a default of ours; the config schema's defaults
// are the only ones.
#pragma once

#include <napi.h>

#include <vector>

#include "../engine/service.h"

namespace fulcrum::addon {

// Returns false with a pending JS exception when the object is malformed.
bool read_snapshot(Napi::Env env, Napi::Value value, std::vector<ServiceSpec>* out);

// addon.snapshotSchema: { enums: { balance, hashKey, protocol, sendProxy: string[] },
// bounds: { <scope>: { <key>: { min, max, zeroIsOff } } } }, the tables the
// reader checks with, so a test can hold them to config/fulcrum.schema.json.
Napi::Object snapshot_schema(Napi::Env env);

}  // namespace fulcrum::addon
