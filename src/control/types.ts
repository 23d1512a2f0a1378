// Contracts between the parts of the control plane that are built side by
// side: health checks (src/health/), the admin API and metrics (src/admin/),
// reload, high availability (src/ha/), BGP announcement (src/announce/) and
// session sync (src/sync/). Each part depends on these types,
// not on the other parts' classes.
import type { AnnounceSource } from '../announce/announcer.js';
import type { HealthCheckConfig } from '../config/health-types.js';
import type { FulcrumConfig } from '../config/types.js';
import type { Engine } from '../engine/engine.js';
import type { SyncSource } from '../sync/session-sync.js';
import type { BackendControl, HealthVerdict } from './backend-control.js';

export type { AnnounceSource, AnnounceStatus } from '../announce/announcer.js';
export type { SyncSource, SyncStatus } from '../sync/session-sync.js';

/** One active check's outcome. */
export interface CheckRecord {
  /** Epoch ms when the check finished. */
  at: number;
  ok: boolean;
  latencyMs: number;
  /** Why it failed, or what it saw ("role primary", "HTTP 200"). Never contains credentials. */
  detail: string;
}

/** What the health checker knows about one backend. */
export interface BackendHealth {
  service: string;
  backend: string;
  /** tcp, send_expect, http, udp, postgres, mysql, redis, or none (no active check: always up). */
  checkType: string;
  status: 'up' | 'down';
  /** Consecutive passes / failures of the active check. */
  rise: number;
  fall: number;
  /** Database role seen by the last check, when the check type reports one. */
  role?: 'primary' | 'replica';
  /** The newest checks, oldest first (at most 20). */
  history: CheckRecord[];
  /** Passive (outlier) ejection in force, if any. */
  ejectedUntil?: number;
  ejections: number;
}

/** The health checker as the rest of the control plane drives it. */
export interface HealthSource {
  snapshot(): BackendHealth[];
  /** Call after each engine.apply() + control.sync(): starts checks for backends
   * not seen before, stops those of removed backends, keeps the rest running. */
  update(config: FulcrumConfig): void;
  /** The verdict a backend not seen before gets, before any check ran: `start`
   * (the first config) and `reload` (a backend a reload added: down until its
   * first passing check, when it has an active check). `check` is the
   * backend's active check in the config being applied: a backend without one
   * is up from the start, never logged down first. */
  initialVerdict(service: string, backend: string, reason: 'start' | 'reload', check: HealthCheckConfig | undefined): HealthVerdict;
  /** Stop every timer and socket. */
  stop(): void;
}

/** What a reload did, or why it did nothing. */
export type ReloadOutcome =
  | {
      ok: true;
      generation: number;
      added: string[];
      removed: string[];
      changed: string[];
      /** Per service kept by the reload: the keys that changed, and `backends (+1 -0)` (config-diff.ts). */
      details?: Record<string, string[]>;
      warnings?: string[];
    }
  | { ok: false; errors: string[] };

/** State of the VRRP instance, for the admin API and metrics. */
export interface HaStatus {
  state: 'initialize' | 'backup' | 'master' | 'fault';
  vrid: number;
  priority: number;
  effectivePriority: number;
  virtualIps: string[];
  masterAddress?: string;
  transitions: number;
  counters: Record<string, number>;
}

export interface HaSource {
  status(): HaStatus;
}


/** The running process as the admin API, metrics and CLI see it. */
export interface Runtime {
  readonly engine: Engine;
  readonly control: BackendControl;
  readonly health: HealthSource;
  readonly ha?: HaSource;
  /** BGP announcement (`announce:`), once started. */
  readonly announce?: AnnounceSource;
  /** Session sharing with peers (`sync:`), once started. */
  readonly sync?: SyncSource;
  config(): FulcrumConfig;
  /** Re-read the config file, validate, apply what changed; an invalid config changes nothing. */
  reload(trigger: 'signal' | 'api' | 'cli'): Promise<ReloadOutcome>;
}
