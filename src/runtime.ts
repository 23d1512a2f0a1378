// The running balancer as the admin API, metrics, the CLI and signals see it:
// the engine, the one BackendControl that sets backend states in it, the
// health source, the optional HA source, the config in force, and reload.
//
// Reload: re-read and validate the file, compute what changed, apply it.
//   1. loadConfig(file)         invalid -> { ok: false, errors }, nothing changed
//   2. engine.apply(next)       a listener that cannot bind -> { ok: false }, nothing changed
//                               (listeners that stay keep their sockets; removed
//                               backends drain: no new connections, open ones
//                               continue until they end, or until their
//                               service's drain_timeout when it has one)
//   3. control.sync(next)       added backends start at health.initialVerdict(..., 'reload')
//   4. health.update(next)      checks start for added backends, stop for removed ones
//   5. engine.whenApplied()     every worker runs the new snapshot
// Reloads are serialized: one that arrives while another runs waits for it,
// so two never interleave.
import { loadConfig } from './config/load.js';
import type { FulcrumConfig } from './config/types.js';
import { describeApplyError } from './control/apply-error.js';
import { BackendControl, type BackendStatus } from './control/backend-control.js';
import { describeChanges, diffConfigs } from './control/config-diff.js';
import { DowntimeTracker, type DowntimeStats } from './control/downtime.js';
import { SessionRates } from './control/session-rates.js';
import type { AnnounceSource, HaSource, HealthSource, ReloadOutcome, Runtime, SyncSource } from './control/types.js';
import { backendKey } from './engine/backend-key.js';
import type { Engine } from './engine/engine.js';
import { ConfigError, formatIssue } from './errors.js';
import { HealthMonitor } from './health/health-monitor.js';
import type { Logger } from './logger.js';

/** What the health checker is built from. */
export interface HealthSourceDeps {
  engine: Engine;
  control: BackendControl;
  logger: Logger;
}

/** The health checker the runtime drives: active checks and passive ejection (src/health/). */
function createHealthSource(deps: HealthSourceDeps): HealthSource {
  return new HealthMonitor(deps);
}

export interface RuntimeOptions {
  logger: Logger;
  ha?: HaSource;
  /** Reads the config file on reload; loadConfig by default. */
  load?: (file: string) => Promise<FulcrumConfig>;
  /** Overrides the health source (tests). */
  health?: HealthSource;
}

export type ReloadTrigger = Parameters<Runtime['reload']>[0];

/** The last reload, for the admin API. */
export interface ReloadRecord {
  at: number;
  trigger: ReloadTrigger;
  outcome: ReloadOutcome;
}

export class FulcrumRuntime implements Runtime {
  readonly engine: Engine;
  readonly control: BackendControl;
  readonly health: HealthSource;
  #ha: HaSource | undefined;
  readonly startedAt = Date.now();
  readonly #logger: Logger;
  /** "service\0datapath\0reason" already logged: each UDP service's datapath is said once, and again when it changes. */
  readonly #datapathsLogged = new Set<string>();

  /** Which datapath each UDP service runs on, once per service and outcome (udp_kernel_nat.h). */
  #logDatapaths(): void {
    for (const d of this.engine.udpDatapaths()) {
      const key = `${d.service}\0${d.datapath}\0${d.reason}`;
      if (this.#datapathsLogged.has(key)) continue;
      this.#datapathsLogged.add(key);
      if (d.datapath === 'kernel') {
        this.#logger.info({ service: d.service, datapath: 'kernel', client_interface: d.clientInterface, backend_interface: d.backendInterface }, 'udp service on the kernel datapath (tcx BPF NAT)');
      } else if (d.configured === 'auto') {
        this.#logger.info({ service: d.service, datapath: 'user', reason: d.reason }, 'udp service on the user-space relay: the kernel datapath does not apply');
      }
    }
  }
  readonly #load: (file: string) => Promise<FulcrumConfig>;
  #config: FulcrumConfig;
  #generation = 1;
  #lastReload: ReloadRecord | undefined;
  readonly #reloadCounts = { applied: 0, rejected: 0 };
  /** The reload running now (or the last one); the next one chains on it. */
  #reloading: Promise<unknown> = Promise.resolve();
  #stopping = false;
  /** When each backend's effective state last changed (or it appeared), by `service\0backend`. */
  readonly #since = new Map<string, number>();
  /** Down transitions and downtime per backend (HAProxy's chkdown, downtime), by the same key. */
  readonly #downtime = new DowntimeTracker();
  /** Connections per second per service and backend, sampled each second (HAProxy's rate, rate_max). */
  readonly rates: SessionRates;

  /**
   * Apply `config` to a started engine. Throws what engine.apply() throws (a
   * listener that cannot bind), before anything else started; the caller
   * still owns the engine then.
   */
  constructor(engine: Engine, config: FulcrumConfig, options: RuntimeOptions) {
    this.engine = engine;
    // First, so a listener that cannot bind throws before a health checker starts.
    engine.apply(config);
    this.#logger = options.logger;
    this.#logDatapaths();
    this.#load = options.load ?? loadConfig;
    this.#ha = options.ha;
    this.control = new BackendControl(engine);
    this.control.on('change', (status: BackendStatus) => {
      const key = backendKey(status.service, status.backend);
      this.#since.set(key, Date.now());
      this.#downtime.observe(key, status.effective);
    });
    this.health = options.health ?? createHealthSource({ engine, control: this.control, logger: options.logger });
    this.control.sync(config.services, (service, backend, b) => this.health.initialVerdict(service, backend, 'start', b.healthCheck));
    this.#trackSince();
    this.health.update(config);
    this.#config = config;
    this.rates = new SessionRates(() => (engine.stopped ? undefined : engine.stats()));
  }

  get ha(): HaSource | undefined {
    return this.#ha;
  }

  #announce: AnnounceSource | undefined;
  #sync: SyncSource | undefined;

  get announce(): AnnounceSource | undefined {
    return this.#announce;
  }

  get sync(): SyncSource | undefined {
    return this.#sync;
  }

  /** Attach the BGP announcer once it runs (after the listeners are bound). */
  attachAnnounce(source: AnnounceSource): void {
    this.#announce = source;
  }

  /** Attach session sync once its socket is bound. */
  attachSync(source: SyncSource): void {
    this.#sync = source;
  }

  /** Attach the VRRP instance once it runs (HA starts after the listeners are bound). */
  attachHa(source: HaSource): void {
    this.#ha = source;
  }

  config(): FulcrumConfig {
    return this.#config;
  }

  /** How many configs have been applied (1 at start). */
  get generation(): number {
    return this.#generation;
  }

  /** True once a stop began: reloads are refused from then on. */
  get stopping(): boolean {
    return this.#stopping;
  }

  /** Reloads since start, by result. */
  get reloadCounts(): Readonly<{ applied: number; rejected: number }> {
    return this.#reloadCounts;
  }

  get lastReload(): ReloadRecord | undefined {
    return this.#lastReload;
  }

  reload(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    // Never rejects: a SIGHUP handler has nobody to hand a rejection to.
    const run = this.#reloading.then(() => this.#reloadNow(trigger)).catch((err: unknown) =>
      this.#rejected(trigger, [`reload failed: ${err instanceof Error ? err.message : String(err)}`]),
    );
    this.#reloading = run;
    return run;
  }

  /** Epoch ms since which the backend has had its current effective state (HAProxy's "status since"). */
  stateSince(service: string, backend: string): number {
    return this.#since.get(backendKey(service, backend)) ?? this.startedAt;
  }

  /** Down transitions and downtime of a backend since it appeared (see control/downtime.ts). */
  backendDowntime(service: string, backend: string): DowntimeStats {
    return this.#downtime.stats(backendKey(service, backend));
  }

  /** Backends new to BackendControl start their clock now; removed ones are forgotten. */
  #trackSince(): void {
    const statuses = this.control.list();
    const present = new Set(statuses.map((s) => backendKey(s.service, s.backend)));
    const now = Date.now();
    for (const key of present) if (!this.#since.has(key)) this.#since.set(key, now);
    for (const key of [...this.#since.keys()]) if (!present.has(key)) this.#since.delete(key);
    // Those that started up emitted no change: their downtime record starts here.
    for (const s of statuses) {
      const key = backendKey(s.service, s.backend);
      if (!this.#downtime.has(key)) this.#downtime.observe(key, s.effective, now);
    }
    this.#downtime.retain(present);
  }

  /** Refuse reloads from now on (the process is stopping), wait for one that
   * runs, then close every listener (see Engine.closeListeners). */
  async closeListeners(): Promise<void> {
    this.#stopping = true;
    await this.#reloading;
    await this.engine.closeListeners();
  }

  /** Reopen the connection log's file after logrotate moved it (SIGUSR1,
   * POST /api/reopen-logs). Throws (code: the errno name) when it cannot be
   * opened; the old file is then still written. */
  reopenLogs(): void {
    this.engine.reopenConnectionLog();
    this.#logger.info({ output: this.#config.connectionLog.path ?? this.#config.connectionLog.output }, 'connection log reopened');
  }

  /** Stop health checks and the engine (open connections are cut). */
  stop(): void {
    this.#stopping = true;
    this.rates.stop();
    this.health.stop();
    this.engine.stop();
  }

  async #reloadNow(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    const file = this.#config.file;
    if (this.#stopping) return this.#rejected(trigger, ['fulcrum is stopping: reload refused']);
    this.#logger.info({ trigger, config: file }, 'reload requested');
    let next: FulcrumConfig;
    try {
      next = await this.#load(file);
    } catch (err) {
      const errors = err instanceof ConfigError ? err.issues.map(formatIssue) : [`${file}: cannot load config: ${err instanceof Error ? err.message : String(err)}`];
      return this.#rejected(trigger, errors);
    }
    // A stop began while the file was read: applying now would reopen listeners.
    if (this.#stopping) return this.#rejected(trigger, ['fulcrum is stopping: reload refused']);
    const diff = diffConfigs(this.#config, next);
    try {
      this.engine.apply(next);
    } catch (err) {
      return this.#rejected(trigger, [describeApplyError(err, next)]);
    }
    this.#logDatapaths();
    this.control.sync(next.services, (service, backend, b) => this.health.initialVerdict(service, backend, 'reload', b.healthCheck));
    this.#trackSince();
    this.health.update(next);
    await this.engine.whenApplied();
    // Settings a restart applies keep their running value, so what the API and
    // the next diff see is what actually runs.
    this.#config = {
      ...next,
      workers: this.#config.workers,
      admin: { ...next.admin, listen: this.#config.admin.listen, maxConnections: this.#config.admin.maxConnections },
      // announce: and sync: apply at start only (reported in needsRestart).
      announce: this.#config.announce,
      sync: this.#config.sync,
    };
    this.#logger.level = next.log.level;
    this.#generation++;
    const outcome: ReloadOutcome = { ok: true, generation: this.#generation, added: diff.added, removed: diff.removed, changed: diff.changed, details: diff.details };
    if (diff.needsRestart.length > 0) {
      outcome.warnings = diff.needsRestart.map((key) => `${key} changed: takes effect after a restart`);
    }
    this.#lastReload = { at: Date.now(), trigger, outcome };
    this.#reloadCounts.applied++;
    this.#logger.info({ trigger, ...outcome }, `reloaded: ${describeChanges(outcome)}`);
    return outcome;
  }

  #rejected(trigger: ReloadTrigger, errors: string[]): ReloadOutcome {
    const outcome: ReloadOutcome = { ok: false, errors };
    this.#lastReload = { at: Date.now(), trigger, outcome };
    this.#reloadCounts.rejected++;
    this.#logger.error({ trigger, errors }, 'reload rejected: the running config stays');
    return outcome;
  }
}

