// Public API of the `fulcrum` package, for embedding the balancer in a Node
// program instead of running the CLI. Everything else under src/ is internal.
export { Engine } from './engine/engine.js';
export type { EngineEvent, EngineOptions } from './engine/engine.js';
export type { BackendState, BackendStats, EngineStats, ServiceStats, TrafficCounters } from './engine/stats.js';
export { loadConfig, parseConfig } from './config/load.js';
export { ConfigError, ERROR_CODES, FulcrumError, type FulcrumErrorCode } from './errors.js';
export type {
  Balance,
  BackendConfig,
  Endpoint,
  FulcrumConfig,
  Protocol,
  ServiceConfig,
  ServiceTimeouts,
} from './config/types.js';
export { createLogger, LOG_LEVELS, type LogLevel, type Logger } from './logger.js';
