// The validated health-check settings of a service and its backends (see
// src/health/ for what runs them). Durations are milliseconds. A backend's
// check is its service's `health_check` with the backend's own keys laid over
// it, resolved once here so the checker never merges.
import type { RawHealthCheck } from './raw-types.js';

export type CheckType = Exclude<NonNullable<RawHealthCheck['type']>, 'none'>;

/** Which database node a check accepts: `any` only asks that it answers. */
export type DatabaseRole = NonNullable<RawHealthCheck['role']>;

/** Where a check's password comes from; the secret itself is never in the config object. */
export type PasswordSource = { env: string } | { file: string };

/** What a reply must contain: bytes anywhere in it (string or hex) or a regular expression over its text. */
export type Expectation = { bytes: Buffer; text: string } | { regex: RegExp };

export interface HealthCheckConfig {
  type: CheckType;
  /** Time between checks while the state is settled. Default 2s. */
  intervalMs: number;
  /** Time between checks while the backend is changing state (HAProxy's fastinter). Default interval / 4, at least 100ms. */
  fastIntervalMs: number;
  /** Hard bound on one check, connect included. Default 1s. */
  timeoutMs: number;
  /** Consecutive passes that bring a down backend up. Default 2. */
  rise: number;
  /** Consecutive failures that take an up backend down. Default 3. */
  fall: number;
  /** Each delay is drawn from ±this share of itself, so checks of many backends do not line up. 0 to 0.5, default 0.1. */
  jitter: number;
  /** Port the check connects to; default the backend's own. */
  port: number | undefined;
  /** send_expect, udp: bytes sent after connecting (or as the datagram). */
  send: Buffer | undefined;
  /** send_expect, udp: what the reply must contain; absent: send_expect passes once sent, udp on any reply. */
  expect: Expectation | undefined;
  /** http: request path, default "/". */
  path: string;
  /** http: Host header, default the backend address. */
  host: string | undefined;
  /** http: statuses that pass; default 200 to 399. */
  expectStatus: readonly number[] | undefined;
  /** postgres, mysql, redis: which node passes. Default any. */
  role: DatabaseRole;
  /** postgres, mysql, redis (ACL user): the user to log in as. */
  user: string | undefined;
  /** postgres, mysql: database to connect to (postgres default: the user's name). */
  database: string | undefined;
  password: PasswordSource | undefined;
}

/** Passive health (Envoy's outlier detection): failed connects counted by the data plane. */
export interface PassiveHealthConfig {
  /** Failed connects in a row that eject a backend. Default 5. */
  consecutiveFailures: number;
  /** First ejection's length; the n-th lasts n times this (capped by maxEjectionMs). Default 30s. */
  baseEjectionMs: number;
  /** Longest ejection. Default 300s. */
  maxEjectionMs: number;
  /** Most backends of the service ejected at once, in percent of its backends (at least one when above 0). Default 50. */
  maxEjectionPercent: number;
}
