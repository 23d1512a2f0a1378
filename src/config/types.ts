// The validated configuration: what `loadConfig` returns once the YAML has
// passed every check. Durations are milliseconds, addresses are parsed.
// Keys are camelCase here; the YAML spells them in snake_case.

export type Protocol = 'tcp';
export type Balance = 'roundrobin' | 'weighted';

/** A parsed `host:port` or `[v6]:port`. `host` is a numeric IP literal. */
export interface Endpoint {
  host: string;
  port: number;
  family: 4 | 6;
  /** Canonical text form: `127.0.0.1:80` or `[::1]:80`. */
  text: string;
}

export interface BackendConfig {
  address: Endpoint;
  /** 1..256, default 1. */
  weight: number;
}

export interface ServiceTimeouts {
  /** Backend connect timeout, default 2s. */
  connectMs: number;
  /** Close a connection with no traffic in either direction for this long, default 10m. */
  idleMs: number;
}

export interface ServiceConfig {
  name: string;
  protocol: Protocol;
  listen: Endpoint;
  balance: Balance;
  backends: BackendConfig[];
  timeouts: ServiceTimeouts;
  /** Extra connect attempts on other backends after the first fails, default 2. */
  retries: number;
}

export interface FulcrumConfig {
  /** Absolute path of the file this came from. */
  file: string;
  /** Data-plane worker threads; `auto` (the default) resolves to the CPU count. */
  workers: number;
  /** On SIGINT/SIGTERM, how long open connections may finish, default 30s. */
  drainTimeoutMs: number;
  log: { level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' };
  services: ServiceConfig[];
}
