// The connection log's stats layout for the addon's exports
// (connection_log_glue.cc; EngineHandle's connection-log methods live there too).
#pragma once

#include <napi.h>

namespace fulcrum::addon {

// addon.connectionStatsLayout: termination names, histogram bounds and word
// offsets (connection_stats.h), so TypeScript reads them from one source.
Napi::Object connection_stats_layout(Napi::Env env);

}  // namespace fulcrum::addon
