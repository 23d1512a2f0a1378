// The health checker: runs each backend's active check on its own timer,
// counts the data plane's connect failures for passive ejection, and hands
// one verdict per backend to BackendControl (never to the engine: an
// operator's drain or maint must win over health).
//
// A backend's verdict is up when its active check says up (or it has none)
// and it is not ejected. Each change of that verdict is logged once, with the
// reason. Runs on the JS thread only; every timer is unref'd.
import type { FulcrumConfig, ServiceConfig } from '../config/types.js';
import type { HealthCheckConfig, PassiveHealthConfig } from '../config/health-types.js';
import type { BackendControl, HealthVerdict } from '../control/backend-control.js';
import type { BackendHealth, HealthSource } from '../control/types.js';
import { backendKey as keyOf } from '../engine/backend-key.js';
import type { Engine, EngineEvent } from '../engine/engine.js';
import { CheckFailure } from '../errors.js';
import type { Logger } from '../logger.js';
import { CheckState, jittered } from './check-state.js';
import { readPassword } from './credentials.js';
import { countFailure, endEjection, newOutlierState, type OutlierState } from './outlier-detector.js';
import { runProbe, type ProbeResult } from './probe.js';

/** The reason of a backend that starts down until its first check passes (logged at info: nothing is wrong yet). */
const WAITING = 'waiting for the first check';

export interface HealthMonitorOptions {
  engine: Engine;
  control: BackendControl;
  logger: Logger;
  /** For tests: the jitter's source of randomness. */
  random?: () => number;
}

interface Entry {
  service: string;
  backend: string;
  host: string;
  port: number;
  check: HealthCheckConfig | undefined;
  /** The check's settings as text, to tell when a reload changed them. */
  fingerprint: string;
  state: CheckState;
  outlier: OutlierState;
  /** The verdict last handed to BackendControl. */
  verdict: HealthVerdict;
  timer: NodeJS.Timeout | undefined;
  /** Bumped when the check is rescheduled or removed: a probe still running for an older run is ignored. */
  run: number;
  removed: boolean;
}

export class HealthMonitor implements HealthSource {
  readonly #engine: Engine;
  readonly #control: BackendControl;
  readonly #logger: Logger;
  readonly #random: () => number;
  readonly #entries = new Map<string, Entry>();
  readonly #passive = new Map<string, PassiveHealthConfig>();
  readonly #onEvent = (event: EngineEvent): void => this.#onEngineEvent(event);
  #configFile = '';
  #updates = 0;
  #stopped = false;
  /** Backend `accepted` counters, read at most once per event batch. */
  #acceptedCache: Map<string, number> | undefined;

  constructor(options: HealthMonitorOptions) {
    this.#engine = options.engine;
    this.#control = options.control;
    this.#logger = options.logger.child({ component: 'health' });
    this.#random = options.random ?? Math.random;
    this.#engine.on('event', this.#onEvent);
  }

  initialVerdict(_service: string, _backend: string, reason: 'start' | 'reload', check: HealthCheckConfig | undefined): HealthVerdict {
    // The same verdict #add() starts the backend's check state with, so
    // update() confirms it instead of flipping it (a backend without a check
    // logged down, then up, in the same millisecond).
    return initialHealth(check, reason);
  }

  update(config: FulcrumConfig): void {
    if (this.#stopped) return;
    const reason = this.#updates++ === 0 ? 'start' : 'reload';
    this.#configFile = config.file;
    this.#passive.clear();
    const seen = new Set<string>();
    for (const service of config.services) {
      if (service.passive) this.#passive.set(service.name, service.passive);
      for (const backend of service.backends) {
        const key = keyOf(service.name, backend.address.text);
        seen.add(key);
        const existing = this.#entries.get(key);
        if (existing) this.#reconfigure(existing, backend.healthCheck, backend.address.host, backend.address.port);
        else this.#add(service, backend.address, backend.healthCheck, reason);
      }
    }
    for (const [key, entry] of this.#entries) {
      if (seen.has(key)) continue;
      this.#forget(entry);
      this.#entries.delete(key);
    }
  }

  snapshot(): BackendHealth[] {
    return [...this.#entries.values()].map((e) => ({
      service: e.service,
      backend: e.backend,
      checkType: e.check?.type ?? 'none',
      status: e.verdict,
      rise: e.state.passes,
      fall: e.state.failures,
      ...(e.state.role ? { role: e.state.role } : {}),
      history: e.state.history.map((h) => ({ ...h })),
      ...(e.outlier.ejectedUntil !== undefined ? { ejectedUntil: e.outlier.ejectedUntil } : {}),
      ejections: e.outlier.totalEjections,
    }));
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#engine.off('event', this.#onEvent);
    for (const entry of this.#entries.values()) this.#forget(entry);
    this.#entries.clear();
  }

  #add(service: ServiceConfig, address: { text: string; host: string; port: number }, check: HealthCheckConfig | undefined, reason: 'start' | 'reload'): void {
    // At start a backend is up until its first check says otherwise, unless a
    // role is asked for: sending writes to a replica for even one check is worse.
    const initial = initialHealth(check, reason);
    const entry: Entry = {
      service: service.name,
      backend: address.text,
      host: address.host,
      port: check?.port ?? address.port,
      check,
      fingerprint: fingerprint(check),
      state: new CheckState(initial),
      outlier: newOutlierState(),
      verdict: this.#control.status(service.name, address.text).health,
      timer: undefined,
      run: 0,
      removed: false,
    };
    this.#entries.set(keyOf(service.name, address.text), entry);
    const why = check === undefined ? 'no active check' : `${reason === 'start' ? 'starting' : 'added by reload'}: ${WAITING}`;
    // BackendControl already holds a backend that must pass a check first
    // down (initialVerdict), so #publish sees no change: say why once, at info.
    if (check !== undefined && initial === 'down' && entry.verdict === 'down') this.#logVerdict(entry, 'down', why);
    else this.#publish(entry, why);
    // The first check comes soon, spread so that many backends do not start at once.
    if (check) this.#schedule(entry, Math.floor(this.#random() * Math.min(check.fastIntervalMs, check.intervalMs)));
  }

  #reconfigure(entry: Entry, check: HealthCheckConfig | undefined, host: string, port: number): void {
    const print = fingerprint(check);
    if (print === entry.fingerprint) return;
    const hadCheck = entry.check !== undefined;
    entry.check = check;
    entry.fingerprint = print;
    entry.host = host;
    entry.port = check?.port ?? port;
    entry.run++;
    clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.state.restart();
    if (!check) {
      entry.state.status = 'up';
      entry.state.role = undefined;
      this.#publish(entry, 'active check removed by reload');
      return;
    }
    // A check that is new to this backend decides with its first result, as at start.
    if (!hadCheck) entry.state.provisional = true;
    this.#logger.info({ service: entry.service, backend: entry.backend, check: check.type }, 'health check settings changed');
    this.#schedule(entry, Math.floor(this.#random() * check.fastIntervalMs));
  }

  #forget(entry: Entry): void {
    entry.removed = true;
    entry.run++;
    clearTimeout(entry.timer);
    clearTimeout(entry.outlier.timer);
  }

  #schedule(entry: Entry, delayMs: number): void {
    const run = entry.run;
    entry.timer = setTimeout(() => {
      // A bug here must not take the process down (an unhandled rejection would): log it and keep checking.
      this.#runCheck(entry, run).catch((err: unknown) => {
        this.#logger.error({ err, service: entry.service, backend: entry.backend }, 'health check loop failed');
        if (!entry.removed && run === entry.run && !this.#stopped && entry.check) this.#schedule(entry, entry.check.intervalMs);
      });
    }, delayMs);
    entry.timer.unref();
  }

  async #runCheck(entry: Entry, run: number): Promise<void> {
    const check = entry.check;
    if (!check || entry.removed || run !== entry.run || this.#stopped) return;
    const started = performance.now();
    let result: ProbeResult;
    try {
      const password = await readPassword(check.password, this.#configFile);
      result = await runProbe({ host: entry.host, port: entry.port, check, password });
    } catch (err) {
      result = { ok: false, detail: err instanceof CheckFailure ? err.message : `check error: ${String(err)}` };
    }
    if (entry.removed || run !== entry.run || this.#stopped) return;
    const latencyMs = Math.round((performance.now() - started) * 100) / 100;
    const first = entry.state.provisional;
    const changed = entry.state.record({ at: Date.now(), ok: result.ok, latencyMs, detail: result.detail }, check, result.role);
    const reason = `${check.type} check ${result.ok ? 'passed' : 'failed'}: ${result.detail}`;
    if (changed) this.#publish(entry, reason);
    // A backend that waited down for its first check (role asked for, or added
    // by a reload) and fails it keeps its verdict: say why once, as a warning,
    // since no change of verdict will.
    else if (first && !result.ok && entry.verdict === 'down') this.#logVerdict(entry, 'down', reason);
    const base = entry.state.changing ? check.fastIntervalMs : check.intervalMs;
    this.#schedule(entry, jittered(base, check.jitter, this.#random));
  }

  /** Hand the combined verdict to BackendControl when it changed, and log it with `reason`. */
  #publish(entry: Entry, reason: string): void {
    const verdict: HealthVerdict = entry.state.status === 'up' && entry.outlier.ejectedUntil === undefined ? 'up' : 'down';
    if (verdict === entry.verdict) return;
    entry.verdict = verdict;
    try {
      this.#control.setHealth(entry.service, entry.backend, verdict);
    } catch (err) {
      // The engine stopped, or the backend left BackendControl before update() told us: nothing to steer.
      this.#logger.debug({ err, service: entry.service, backend: entry.backend }, 'health verdict not applied');
      return;
    }
    this.#logVerdict(entry, verdict, reason);
  }

  /** Log a backend's verdict with its reason: down is a warning, except while it only waits for its first check. */
  #logVerdict(entry: Entry, verdict: HealthVerdict, reason: string): void {
    const fields = {
      service: entry.service,
      backend: entry.backend,
      check: entry.check?.type ?? 'none',
      health: verdict,
      reason,
      ...(entry.state.role ? { role: entry.state.role } : {}),
    };
    const message = `backend ${entry.backend} of ${entry.service} is ${verdict}: ${reason}`;
    if (verdict === 'down' && !reason.endsWith(WAITING)) this.#logger.warn(fields, message);
    else this.#logger.info(fields, message);
  }

  #onEngineEvent(event: EngineEvent): void {
    if (event.type !== 'connect_failed' || !event.service || !event.backend || this.#stopped) return;
    const config = this.#passive.get(event.service);
    const entry = this.#entries.get(keyOf(event.service, event.backend));
    if (!config || !entry) return;
    const siblings = [...this.#entries.values()].filter((e) => e.service === entry.service);
    const ejected = siblings.filter((e) => e.outlier.ejectedUntil !== undefined).length;
    const now = Date.now();
    const outcome = countFailure(entry.outlier, config, this.#accepted(entry), now, ejected, siblings.length);
    if (outcome === undefined) return;
    if ('skipped' in outcome) {
      this.#logger.warn(
        { service: entry.service, backend: entry.backend, maxEjectionPercent: config.maxEjectionPercent, ejected },
        `backend ${entry.backend} of ${entry.service} reached ${config.consecutiveFailures} connect failures in a row but stays in: ${ejected} of ${siblings.length} backends are already ejected (max_ejection_percent ${config.maxEjectionPercent})`,
      );
      entry.outlier.consecutive = 0;
      return;
    }
    entry.outlier.timer = setTimeout(() => {
      endEjection(entry.outlier, Date.now());
      if (!entry.removed) this.#publish(entry, `ejection ended after ${outcome.ejectMs} ms`);
    }, outcome.ejectMs);
    entry.outlier.timer.unref();
    this.#publish(
      entry,
      `ejected for ${outcome.ejectMs} ms (ejection ${entry.outlier.ejections}) after ${config.consecutiveFailures} connect failures in a row (last ${event.code ?? 'error'})`,
    );
  }

  /** The backend's connections established so far (engine counters; cached for the current batch of events). */
  #accepted(entry: Entry): number {
    if (!this.#acceptedCache) {
      const cache = new Map<string, number>();
      for (const service of this.#engine.stats().services) {
        for (const backend of service.backends) cache.set(keyOf(service.name, backend.address), backend.accepted);
      }
      this.#acceptedCache = cache;
      setImmediate(() => {
        this.#acceptedCache = undefined;
      });
    }
    return this.#acceptedCache.get(keyOf(entry.service, entry.backend)) ?? 0;
  }
}

/** The settings of a check as comparable text (Buffers as hex, regexes as source). */
function fingerprint(check: HealthCheckConfig | undefined): string {
  if (!check) return 'none';
  return JSON.stringify(check, (_key, value: unknown) => {
    if (value instanceof RegExp) return `/${value.source}/${value.flags}`;
    if (value && typeof value === 'object' && (value as { type?: string }).type === 'Buffer') return `hex:${Buffer.from((value as { data: number[] }).data).toString('hex')}`;
    return value;
  });
}

/**
 * A backend's verdict before its first check: up without a check; with one, up
 * at start unless a role is asked for (sending writes to a replica for even
 * one check is worse), down when a reload added it (it has never been checked,
 * and the others are serving).
 */
function initialHealth(check: HealthCheckConfig | undefined, reason: 'start' | 'reload'): HealthVerdict {
  if (check === undefined) return 'up';
  return reason === 'reload' || check.role !== 'any' ? 'down' : 'up';
}
