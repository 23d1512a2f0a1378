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
//
// The running backends are the file's plus those added through the admin API
// and those DNS gives (src/discovery/backend-set.ts): config() is that set.
// A change from the API or DNS takes the same steps 2-5 on the same chain
// (#applyRunning), so removed backends drain as on a reload and the others
// keep their slots (sticky entries, Maglev placements, counters). A reload
// rebuilds from the file: API additions and API weights are dropped (the
// file wins, as in HAProxy); DNS entries kept by the reload keep their answers.
import { loadConfig } from './config/load.js';
import type { FulcrumConfig } from './config/types.js';
import { describeApplyError } from './control/apply-error.js';
import { BackendControl, type BackendStatus } from './control/backend-control.js';
import { describeChanges, diffConfigs } from './control/config-diff.js';
import { DowntimeTracker, type DowntimeStats } from './control/downtime.js';
import { SessionRates } from './control/session-rates.js';
import type { AnnounceSource, HaSource, HealthSource, ReloadOutcome, Runtime, SyncSource } from './control/types.js';
import type { BackendConfig } from './config/types.js';
import { buildApiBackend } from './discovery/api-backend.js';
import { runningConfig } from './discovery/backend-set.js';
import { DnsDiscovery } from './discovery/dns-discovery.js';
import { backendKey } from './engine/backend-key.js';
import type { Engine } from './engine/engine.js';
import { ApiError, ConfigError, formatIssue } from './errors.js';
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
  /** Runs right after the engine's first apply, before anything else (an upgrade installs the
   * previous process's session table there: the engine's tables exist from then on). */
  afterFirstApply?: (engine: Engine) => void;
}

/** See FulcrumRuntime.attachReloadObserver. */
export interface ReloadObserver {
  applying(): void;
  settled(): void;
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
  /** The config as the file says it (config() adds the API's and DNS's backends). */
  #fileConfig: FulcrumConfig;
  /** Backends added through the admin API, by service, with the entry as written (config dump). */
  readonly #apiBackends = new Map<string, Array<{ backend: BackendConfig; written: Record<string, unknown> }>>();
  /** Weights set through the admin API since the last reload, by backendKey: kept across API and DNS changes. */
  readonly #weights = new Map<string, number>();
  /** Resolves backend names of the file (`address: NAME:PORT`, `srv:`). */
  readonly dns: DnsDiscovery;
  /** A DNS change is waiting to be applied (several answers in a row are applied once). */
  #dnsPending = false;
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
    // No DNS answer yet: a service starts with its file's addresses.
    engine.apply(config);
    options.afterFirstApply?.(engine);
    this.#fileConfig = config;
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
    this.dns = new DnsDiscovery(
      config.resolvers ?? { servers: undefined, timeoutMs: 2000, tries: 2, minTtlMs: 1000, maxTtlMs: 300_000, retryMs: 5000 },
      options.logger,
      () => this.#dnsChanged(),
    );
    this.dns.update(config);
  }

  /** The config as the file says it, without the API's and DNS's backends. */
  fileConfig(): FulcrumConfig {
    return this.#fileConfig;
  }

  /** Backends added through the admin API, with their entries as written, by service. */
  apiBackends(): ReadonlyMap<string, ReadonlyArray<{ backend: BackendConfig; written: Record<string, unknown> }>> {
    return this.#apiBackends;
  }

  /**
   * Add a backend to `service` at run time (POST /api/services/NAME/backends).
   * Throws ApiError: 404 no such service, 400 invalid entry, 409 the address is
   * already a backend of the service; nothing changed then. Resolves once
   * every worker runs with it.
   */
  async addBackend(service: string, body: unknown): Promise<BackendConfig> {
    return this.#serialized(async () => {
      const owner = this.#fileConfig.services.find((s) => s.name === service);
      if (owner === undefined) throw new ApiError(404, 'not_found', `no service ${service}; services: ${this.#fileConfig.services.map((s) => s.name).join(', ')}`);
      const built = buildApiBackend(owner, this.#fileConfig.file, body);
      if (!built.ok) throw new ApiError(400, 'bad_backend', built.errors.join('; '));
      const address = built.backend.address.text;
      const running = this.#config.services.find((s) => s.name === service)!.backends.find((b) => b.address.text === address);
      if (running !== undefined) {
        const from = running.origin?.kind === 'dns' ? `DNS (${running.origin.name})` : running.origin?.kind === 'api' ? 'the admin API' : 'the config file';
        throw new ApiError(409, 'duplicate_backend', `${address} is already a backend of service ${service} (from ${from})`);
      }
      const list = this.#apiBackends.get(service) ?? [];
      list.push({ backend: built.backend, written: built.written });
      this.#apiBackends.set(service, list);
      try {
        await this.#applyRunning('api');
      } catch (err) {
        list.pop();
        if (list.length === 0) this.#apiBackends.delete(service);
        throw new ApiError(422, 'not_applied', `the engine refused the new backend set: ${describeApplyError(err, this.#config)}`);
      }
      this.#logger.info({ service, backend: address, origin: 'api' }, `backend ${address} added to ${service} through the admin API (a reload rebuilds from the file)`);
      return built.backend;
    });
  }

  /**
   * Remove a backend the admin API added: it drains (no new connections; open
   * ones continue until they end, or the service's drain_timeout), as a
   * backend a reload removes. A file or DNS backend is refused (409): the file
   * or the records decide those.
   */
  async removeBackend(service: string, address: string): Promise<void> {
    return this.#serialized(async () => {
      const owner = this.#config.services.find((s) => s.name === service);
      if (owner === undefined) throw new ApiError(404, 'not_found', `no service ${service}; services: ${this.#config.services.map((s) => s.name).join(', ')}`);
      const running = owner.backends.find((b) => b.address.text === address);
      if (running === undefined) throw new ApiError(404, 'not_found', `no backend ${address} in service ${service}`);
      if (running.origin?.kind !== 'api') {
        const why =
          running.origin?.kind === 'dns'
            ? `it comes from DNS (${running.origin.name}): change the records, or drain/maint it`
            : 'it is in the config file: remove it there and reload (the file wins), or drain/maint it';
        throw new ApiError(409, 'not_removable', `${address} cannot be removed through the API: ${why}`);
      }
      const list = this.#apiBackends.get(service)!;
      const index = list.findIndex((e) => e.backend.address.text === address);
      const [removed] = list.splice(index, 1);
      if (list.length === 0) this.#apiBackends.delete(service);
      try {
        await this.#applyRunning('api');
      } catch (err) {
        list.splice(index, 0, removed!);
        this.#apiBackends.set(service, list);
        throw new ApiError(422, 'not_applied', `the engine refused the new backend set: ${describeApplyError(err, this.#config)}`);
      }
      this.#weights.delete(backendKey(service, address));
      this.#logger.info({ service, backend: address, origin: 'api' }, `backend ${address} removed from ${service} through the admin API: it drains`);
    });
  }

  /** Set a backend's weight until the next reload (kept when the API or DNS change the backend set). */
  setWeight(service: string, backend: string, weight: number): void {
    this.engine.setBackendWeight(service, backend, weight);
    this.#weights.set(backendKey(service, backend), weight);
  }

  /** Run `task` after the reload or change that runs now, before the next one. */
  #serialized<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#reloading.then(() => {
      if (this.#stopping) throw new ApiError(503, 'stopping', 'fulcrum is stopping: change refused');
      return task();
    });
    this.#reloading = run.catch(() => undefined);
    return run;
  }

  /** DNS answered with other addresses: apply the running set once the chain is free. */
  #dnsChanged(): void {
    if (this.#dnsPending) return;
    this.#dnsPending = true;
    void this.#serialized(async () => {
      this.#dnsPending = false;
      await this.#applyRunning('dns');
    }).catch((err: unknown) => {
      this.#dnsPending = false;
      if (err instanceof ApiError && err.status === 503) return;
      this.#logger.error({ err: err instanceof Error ? err.message : String(err) }, 'dns: the new backend set was not applied; the running one stays');
    });
  }

  /** Apply the file's config with the API's and DNS's backends (reload steps 2 to 5). Throws what engine.apply() throws; nothing changed then. */
  async #applyRunning(reason: 'api' | 'dns'): Promise<void> {
    const started = performance.now();
    const next = runningConfig(this.#fileConfig, {
      api: (service) => (this.#apiBackends.get(service) ?? []).map((e) => e.backend),
      dns: (service) => this.dns.backendsOf(service),
    });
    this.engine.apply(next);
    this.control.sync(next.services, (service, backend, b) => this.health.initialVerdict(service, backend, 'reload', b.healthCheck));
    this.#trackSince();
    this.health.update(next);
    this.#restoreWeights(next);
    await this.engine.whenApplied();
    this.#config = next;
    this.#logger.debug({ reason, ms: Math.round(performance.now() - started) }, 'running backend set applied');
  }

  /** Weights set through the API since the last reload, on the backends still there (engine.apply() resets them). */
  #restoreWeights(config: FulcrumConfig): void {
    for (const [key, weight] of [...this.#weights]) {
      const service = config.services.find((s) => key.startsWith(`${s.name}\0`));
      const backend = service?.backends.find((b) => backendKey(service.name, b.address.text) === key);
      if (service === undefined || backend === undefined) {
        this.#weights.delete(key);
        continue;
      }
      this.engine.setBackendWeight(service.name, backend.address.text, weight);
    }
  }

  get ha(): HaSource | undefined {
    return this.#ha;
  }

  #announce: AnnounceSource | undefined;
  #sync: SyncSource | undefined;
  #reloadObserver: ReloadObserver | undefined;

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

  /** Told when a reload that passed validation starts changing things and when it
   * is over (applied or rolled back): systemd's RELOADING=1 / READY=1 (src/systemd/). */
  attachReloadObserver(observer: ReloadObserver): void {
    this.#reloadObserver = observer;
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
    this.dns.stop();
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
    // A config rejected above never reaches the observer: nothing changed, so
    // systemd sees no reload (the reload command still exits non-zero).
    this.#reloadObserver?.applying();
    try {
      return await this.#apply(trigger, next);
    } finally {
      this.#reloadObserver?.settled();
    }
  }

  /** Apply a validated config; on a listener that cannot bind, the running one stays. */
  async #apply(trigger: ReloadTrigger, next: FulcrumConfig): Promise<ReloadOutcome> {
    const diff = diffConfigs(this.#fileConfig, next);
    // The file wins: API additions and weights go; DNS entries the file keeps keep their last answers.
    this.dns.update(next);
    const running = runningConfig(next, { api: () => [], dns: (service) => this.dns.backendsOf(service) });
    try {
      this.engine.apply(running);
    } catch (err) {
      this.dns.update(this.#fileConfig);
      return this.#rejected(trigger, [describeApplyError(err, next)]);
    }
    const droppedApi = [...this.#apiBackends.values()].reduce((n, list) => n + list.length, 0);
    this.#apiBackends.clear();
    this.#weights.clear();
    this.#logDatapaths();
    this.control.sync(running.services, (service, backend, b) => this.health.initialVerdict(service, backend, 'reload', b.healthCheck));
    this.#trackSince();
    this.health.update(running);
    await this.engine.whenApplied();
    if (droppedApi > 0) this.#logger.info({ trigger, dropped: droppedApi }, `reload: ${droppedApi} backend${droppedApi === 1 ? '' : 's'} added through the admin API dropped (the file wins)`);
    // Settings a restart applies keep their running value, so what the API and
    // the next diff see is what actually runs.
    this.#fileConfig = {
      ...next,
      workers: this.#config.workers,
      admin: { ...next.admin, listen: this.#config.admin.listen, maxConnections: this.#config.admin.maxConnections },
      // announce: and sync: apply at start only (reported in needsRestart).
      announce: this.#config.announce,
      sync: this.#config.sync,
    };
    this.#config = { ...this.#fileConfig, services: running.services };
    this.#logger.level = next.log.level;
    this.#generation++;
    const outcome: ReloadOutcome = { ok: true, generation: this.#generation, added: diff.added, removed: diff.removed, changed: diff.changed, details: diff.details };
    if (diff.needsRestart.length > 0) {
      outcome.warnings = diff.needsRestart.map((key) => `${key} changed: takes effect after a restart`);
    }
    if (droppedApi > 0) {
      (outcome.warnings ??= []).push(`${droppedApi} backend${droppedApi === 1 ? '' : 's'} added through the admin API dropped: the backends are the file's again (fulcrum config dump writes the running set to keep them)`);
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

