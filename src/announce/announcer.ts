// ECMP through BGP: which VIPs this node announces, and why (docs/ecmp.md).
//
//   per VIP      desired state                        reason shown
//   ---------    -----------------------------------  ---------------------------
//   any          withdrawn while starting, stopping,  "starting", "stopping",
//                drained by the admin API             "drained by admin"
//                withdrawn when the engine stopped    "engine stopped"
//                withdrawn while session sync learns  "session sync: learning the
//                the peers' clients at start (at     peers' clients"
//                most 10 s, SessionSync.resyncing)
//                withdrawn when tracking fails        "tracking: service x: no backend up"
//                withdrawn when one of the VIP's      "service web: no backend up"
//                services has no backend up
//                otherwise announced                  "serving"
//
// Every TRACK_INTERVAL_MS the desired state is evaluated (the same check as
// VRRP's tracking, src/ha/tracking.ts); a change is applied at once through
// birdc (enable/disable of the VIP's static protocol, see bird-config.ts).
// Every RECONCILE_INTERVAL_MS BIRD's own view (`show protocols`) is read:
// neighbor states for the status, and any VIP protocol whose state differs
// from what is desired (BIRD restarted, someone typed in birdc) is set again.
// An owned BIRD that exits is started again.
//
// Upgrade (src/upgrade/): handOver() in the old process stops every timer and
// birdc call and gives up BIRD without a withdraw (bird-process.ts passes its
// watchdog on); adopt() in the new process takes BIRD and each VIP's state as
// they are, and goes on evaluating from there: a VIP announced stays
// announced unless this process has a reason to withdraw it.
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import type { AnnounceConfig, FulcrumConfig } from '../config/types.js';
import { servicesOfVip } from '../config/announce.js';
import type { Engine } from '../engine/engine.js';
import { BirdError } from '../errors.js';
import { loadNative } from '../engine/native.js';
import { checkDataPlane } from '../ha/tracking.js';
import type { Logger } from '../logger.js';
import { birdConfig, neighborProtocol, vipProtocol } from './bird-config.js';
import { BirdProcess, writeIncludeFile, type BirdPipes } from './bird-process.js';
import type { AnnounceHandover } from '../upgrade/protocol.js';
import { birdc, parseProtocols, type ProtocolRow } from './birdc.js';

const TRACK_INTERVAL_MS = 250;
const RECONCILE_INTERVAL_MS = 1000;
const BIRD_RESTART_DELAY_MS = 1000;

export type VipState = 'announced' | 'withdrawn';

export interface AnnounceVipStatus {
  vip: string;
  state: VipState;
  /** Why: "serving", or why not. */
  reason: string;
  /** Epoch ms of the last change of state. */
  since: number;
  services: string[];
}

export interface AnnounceStatus {
  bird: { managed: boolean; running: boolean; reachable: boolean; socket: string; pid?: number; lastError?: string };
  localAddress: string;
  localAs: number;
  bfd: boolean;
  vips: AnnounceVipStatus[];
  neighbors: Array<{ address: string; as: number; state: string; info: string }>;
  counters: { announcements: number; withdrawals: number; birdcErrors: number; birdRestarts: number };
}

export interface AnnounceSource {
  status(): AnnounceStatus;
  /** Withdraw every VIP and keep them withdrawn until resume() (admin drain). */
  drain(): Promise<void>;
  resume(): Promise<void>;
}

export interface AnnouncerOptions {
  config: AnnounceConfig;
  engine: Pick<Engine, 'stats' | 'stopped'>;
  /** The config in force (its services decide which services serve a VIP). */
  current: () => FulcrumConfig;
  logger: Logger;
  /** While true, nothing is announced: session sync is still being taught the
   * peers' clients (SessionSync.resyncing), so a node that restarts takes its
   * share of the ECMP traffic only once it knows where those clients go. */
  holdAnnounce?: () => boolean;
}

/** What keeps every VIP withdrawn now, or undefined (then tracking and each VIP's services decide). */
export function announceHeldBack(state: {
  phase: 'starting' | 'running' | 'stopping' | 'stopped';
  drained: boolean;
  engineStopped: boolean;
  learning: boolean;
}): string | undefined {
  if (state.phase !== 'running') return state.phase;
  if (state.drained) return 'drained by admin';
  if (state.engineStopped) return 'engine stopped';
  if (state.learning) return "session sync: learning the peers' clients";
  return undefined;
}

interface VipEntry {
  status: AnnounceVipStatus;
  /** What BIRD was last told (undefined: nothing yet). */
  applied: VipState | undefined;
}

export class Announcer implements AnnounceSource {
  readonly #config: AnnounceConfig;
  readonly #engine: AnnouncerOptions['engine'];
  readonly #current: () => FulcrumConfig;
  readonly #logger: Logger;
  readonly #bird: BirdProcess | undefined;
  readonly #vips = new Map<string, VipEntry>();
  /** VIPs this process added to the interface (removed again at stop). */
  readonly #addedAddresses: string[] = [];
  #phase: 'starting' | 'running' | 'stopping' | 'stopped' = 'starting';
  readonly #holdAnnounce: () => boolean;
  #drained = false;
  #reachable = false;
  #lastError: string | undefined;
  #neighbors: Array<{ address: string; as: number; state: string; info: string }>;
  readonly #counters = { announcements: 0, withdrawals: 0, birdcErrors: 0, birdRestarts: 0 };
  #trackTimer: NodeJS.Timeout | undefined;
  #reconcileTimer: NodeJS.Timeout | undefined;
  /** birdc commands run one at a time, in order. */
  #queue: Promise<unknown> = Promise.resolve();
  #restarting = false;

  constructor(options: AnnouncerOptions) {
    this.#config = options.config;
    this.#engine = options.engine;
    this.#current = options.current;
    this.#holdAnnounce = options.holdAnnounce ?? (() => false);
    this.#logger = options.logger.child({ announce: options.config.localAddress });
    if (options.config.bird.run) {
      this.#bird = new BirdProcess({ ...options.config.bird, logger: this.#logger });
    }
    const now = Date.now();
    for (const vip of options.config.vips) {
      this.#vips.set(vip, { status: { vip, state: 'withdrawn', reason: 'starting', since: now, services: [] }, applied: undefined });
    }
    this.#neighbors = options.config.neighbors.map((n) => ({ address: n.address, as: n.as, state: 'unknown', info: '' }));
  }

  /** Add the VIPs to the interface, start (or configure) BIRD, then announce what can be served. */
  async start(): Promise<void> {
    const { interface: ifname, vips, bird } = this.#config;
    for (const vip of vips) {
      const result = loadNative().setInterfaceAddress(ifname, true, vip, 32);
      if (result === 0) this.#addedAddresses.push(vip);
      else if (result !== -constants.errno.EEXIST) {
        // EEXIST: already there (put there by someone else, so left there at stop).
        const code = Object.entries(constants.errno).find(([, n]) => n === -result)?.[0] ?? `errno ${-result}`;
        throw Object.assign(new Error(`cannot add VIP ${vip}/32 to ${ifname}: ${code}`), { code });
      }
    }
    if (this.#bird !== undefined) {
      await this.#bird.start(birdConfig(this.#config, true));
    } else {
      writeIncludeFile(bird.config, birdConfig(this.#config, false));
      const result = await birdc(bird.birdc, bird.socket, ['configure']);
      if (!result.ok || /error/i.test(result.output)) {
        throw new BirdError(`birdc configure on ${bird.socket} failed: ${result.output} (does BIRD's config include "${bird.config}"?)`);
      }
    }
    this.#reachable = true;
    this.#logger.info(
      { vips, neighbors: this.#config.neighbors, localAs: this.#config.localAs, bfd: this.#config.bfd, bird: this.#bird ? 'owned' : bird.socket },
      'BGP announcement starting',
    );
    this.#phase = 'running';
    await this.#reconcile(); // reads BIRD's protocols for the status, then announces what can be served
    this.#trackTimer = setInterval(() => void this.#evaluate(), TRACK_INTERVAL_MS);
    this.#reconcileTimer = setInterval(() => void this.#reconcile(), RECONCILE_INTERVAL_MS);
  }

  /**
   * Upgrade, the new process: why BIRD's config cannot be kept as it is
   * (the announce: block changed in a way the running BIRD does not have),
   * or undefined when adopt() can take it over. Checked before the new
   * process says it is ready, so the upgrade fails instead of withdrawing.
   */
  cannotAdopt(): string | undefined {
    const { bird } = this.#config;
    const wanted = birdConfig(this.#config, this.#bird !== undefined);
    let current: string;
    try {
      current = readFileSync(bird.config, 'utf8');
    } catch (err) {
      return `cannot read BIRD's config ${bird.config}: ${(err as Error).message}`;
    }
    if (current === wanted) return undefined;
    return `the announce: block changed (BIRD's config ${bird.config} would change): BIRD cannot be handed over without a withdraw; restart Fulcrum to apply it`;
  }

  /**
   * Upgrade, the old process: stop (timers, birdc) without a withdraw and
   * without stopping BIRD; returns each VIP's state and, when this process
   * runs BIRD, its watchdog's pipes (send them, then call `sent`). The VIPs
   * this process added stay on the interface: the new process removes them at
   * its stop. stop() afterwards does nothing.
   */
  async handOver(): Promise<{ handover: AnnounceHandover; fds: number[]; sent: () => void } | undefined> {
    if (this.#phase !== 'running') return undefined;
    this.#phase = 'stopped';
    if (this.#trackTimer) clearInterval(this.#trackTimer);
    if (this.#reconcileTimer) clearInterval(this.#reconcileTimer);
    await this.#queue;
    const bird = this.#bird?.handOver();
    const handover: AnnounceHandover = {
      vips: [...this.#vips.values()].map(({ status: { vip, state, reason, since }, applied }) => ({ vip, state, reason, since, ...(applied !== undefined && { applied }) })),
      addedAddresses: [...this.#addedAddresses],
      drained: this.#drained,
      ...(bird && { bird: bird.handover }),
    };
    this.#addedAddresses.length = 0;
    this.#logger.info({ counters: this.#counters, bird: bird?.handover.pid }, 'BGP announcement handed over to the new process');
    return { handover, fds: bird ? [...bird.fds] : [], sent: () => this.#bird?.release() };
  }

  /**
   * Upgrade, the new process: instead of start(), take over what the old
   * process announced: its BIRD (`pipes`, when it ran one) or the existing
   * BIRD (announce.bird.run: false, whose include file is unchanged: see
   * cannotAdopt), and each VIP's state. Nothing is withdrawn or announced
   * again by the takeover itself.
   */
  async adopt(handover: AnnounceHandover, pipes: BirdPipes | undefined): Promise<void> {
    if (this.#bird !== undefined) {
      if (pipes === undefined) throw new BirdError('the previous process handed over no BIRD to take over');
      await this.#bird.adopt(pipes);
    }
    this.#addedAddresses.push(...handover.addedAddresses.filter((vip) => this.#config.vips.includes(vip)));
    this.#drained = handover.drained === true;
    for (const vip of this.#config.vips) {
      const from = handover.vips.find((v) => v.vip === vip);
      const entry = this.#vips.get(vip)!;
      if (from === undefined) continue;
      entry.status = { ...entry.status, state: from.state, reason: from.reason, since: from.since };
      entry.applied = from.applied;
    }
    this.#reachable = true;
    this.#logger.info(
      { vips: this.#config.vips, announced: handover.vips.filter((v) => v.state === 'announced').map((v) => v.vip), bird: this.#bird ? pipes?.pid : this.#config.bird.socket },
      'BGP announcement taken over from the previous process',
    );
    this.#phase = 'running';
    await this.#reconcile();
    this.#trackTimer = setInterval(() => void this.#evaluate(), TRACK_INTERVAL_MS);
    this.#reconcileTimer = setInterval(() => void this.#reconcile(), RECONCILE_INTERVAL_MS);
  }

  /** Withdraw everything (the first stop signal); listeners are still open. */
  async withdrawAll(reason = 'stopping'): Promise<void> {
    if (this.#phase === 'stopped') return;
    this.#phase = 'stopping';
    await this.#apply(new Map([...this.#vips.keys()].map((vip) => [vip, { state: 'withdrawn' as const, reason }])));
  }

  /** Withdraw, stop BIRD (when owned) and remove the VIPs this process added. */
  async stop(): Promise<void> {
    if (this.#phase === 'stopped') return;
    await this.withdrawAll();
    this.#phase = 'stopped';
    if (this.#trackTimer) clearInterval(this.#trackTimer);
    if (this.#reconcileTimer) clearInterval(this.#reconcileTimer);
    await this.#queue;
    await this.#bird?.stop();
    for (const vip of this.#addedAddresses) loadNative().setInterfaceAddress(this.#config.interface, false, vip, 32);
    this.#addedAddresses.length = 0;
    this.#logger.info({ counters: this.#counters }, 'BGP announcement stopped');
  }

  async drain(): Promise<void> {
    this.#drained = true;
    this.#logger.info('announce: drained by admin, withdrawing every VIP');
    await this.#evaluate();
  }

  async resume(): Promise<void> {
    this.#drained = false;
    this.#logger.info('announce: resumed by admin');
    await this.#evaluate();
  }

  status(): AnnounceStatus {
    return {
      bird: {
        managed: this.#bird !== undefined,
        running: this.#bird ? this.#bird.running : this.#reachable,
        reachable: this.#reachable,
        socket: this.#config.bird.socket,
        ...(this.#bird?.pid === undefined ? {} : { pid: this.#bird.pid }),
        ...(this.#lastError === undefined ? {} : { lastError: this.#lastError }),
      },
      localAddress: this.#config.localAddress,
      localAs: this.#config.localAs,
      bfd: this.#config.bfd,
      vips: [...this.#vips.values()].map((e) => ({ ...e.status, services: [...e.status.services] })),
      neighbors: this.#neighbors.map((n) => ({ ...n })),
      counters: { ...this.#counters },
    };
  }

  /** What each VIP should be now, and why. */
  desired(): Map<string, { state: VipState; reason: string; services: string[] }> {
    const config = this.#current();
    const out = new Map<string, { state: VipState; reason: string; services: string[] }>();
    const common = announceHeldBack({ phase: this.#phase, drained: this.#drained, engineStopped: this.#engine.stopped, learning: this.#holdAnnounce() });
    const tracked = common === undefined ? checkDataPlane(this.#engine, { services: this.#config.track.services, weight: 0 }) : undefined;
    for (const vip of this.#vips.keys()) {
      const services = servicesOfVip(vip, config.services);
      let reason = common ?? (tracked && !tracked.ok ? `tracking: ${tracked.reasons.join('; ')}` : undefined);
      if (reason === undefined) {
        const verdict = checkDataPlane(this.#engine, { services, weight: 0 });
        reason = verdict.ok ? undefined : verdict.reasons.join('; ');
      }
      out.set(vip, { state: reason === undefined ? 'announced' : 'withdrawn', reason: reason ?? 'serving', services });
    }
    return out;
  }

  async #evaluate(): Promise<void> {
    if (this.#phase !== 'running') return;
    await this.#apply(this.desired());
  }

  /** Tell BIRD what changed (serialized with every other birdc call). */
  #apply(desired: Map<string, { state: VipState; reason: string; services?: string[] }>): Promise<void> {
    const run = this.#queue.then(async () => {
      for (const [vip, want] of desired) {
        const entry = this.#vips.get(vip)!;
        if (want.services) entry.status.services = want.services;
        const changed = entry.status.state !== want.state;
        if (changed || entry.status.reason !== want.reason) {
          if (changed) entry.status.since = Date.now();
          const fields = { vip, state: want.state, reason: want.reason };
          if (want.state === 'announced') this.#logger.info(fields, `announce: ${vip} announced`);
          else if (want.reason === 'stopping') this.#logger.info(fields, `announce: ${vip} withdrawn: stopping`);
          else this.#logger.warn(fields, `announce: ${vip} ${changed ? 'withdrawn' : 'not announced'}: ${want.reason}`);
          entry.status.state = want.state;
          entry.status.reason = want.reason;
        }
        if (entry.applied === want.state) continue;
        if (await this.#switch(vip, want.state)) {
          entry.applied = want.state;
          if (want.state === 'announced') this.#counters.announcements++;
          else this.#counters.withdrawals++;
        }
      }
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** birdc enable|disable the VIP's protocol; false when BIRD did not confirm. */
  async #switch(vip: string, state: VipState): Promise<boolean> {
    const verb = state === 'announced' ? 'enable' : 'disable';
    const result = await birdc(this.#config.bird.birdc, this.#config.bird.socket, [verb, vipProtocol(vip)]);
    const confirmed = result.ok && /(enabled|disabled)/.test(result.output);
    if (!confirmed) {
      this.#counters.birdcErrors++;
      this.#lastError = `birdc ${verb} ${vipProtocol(vip)}: ${result.output}`;
      this.#logger.warn({ vip, error: result.output }, `announce: birdc ${verb} failed`);
    }
    return confirmed;
  }

  /** Read BIRD's protocols; set again any VIP protocol that disagrees; restart an owned BIRD that died. */
  async #reconcile(): Promise<void> {
    if (this.#phase !== 'running') return;
    if (this.#bird !== undefined && !this.#bird.running) return this.#restartBird();
    const result = await birdc(this.#config.bird.birdc, this.#config.bird.socket, ['show', 'protocols']);
    if (!result.ok) {
      if (this.#reachable) this.#logger.warn({ error: result.output }, 'announce: BIRD does not answer');
      this.#reachable = false;
      this.#lastError = result.output;
      this.#counters.birdcErrors++;
      return;
    }
    if (!this.#reachable) this.#logger.info('announce: BIRD answers again');
    this.#reachable = true;
    const rows = new Map<string, ProtocolRow>(parseProtocols(result.output).map((r) => [r.name, r]));
    this.#neighbors = this.#config.neighbors.map((n, i) => {
      const row = rows.get(neighborProtocol(i));
      return { address: n.address, as: n.as, state: row?.state ?? 'missing', info: row?.info ?? '' };
    });
    for (const [vip, entry] of this.#vips) {
      const row = rows.get(vipProtocol(vip));
      const live: VipState | undefined = row === undefined ? undefined : row.state === 'up' ? 'announced' : 'withdrawn';
      if (live !== entry.status.state) entry.applied = undefined; // set again by the next evaluation
    }
    await this.#evaluate();
  }

  async #restartBird(): Promise<void> {
    if (this.#restarting || this.#bird === undefined) return;
    this.#restarting = true;
    this.#reachable = false;
    this.#counters.birdRestarts++;
    this.#logger.warn('announce: BIRD is not running: starting it again');
    try {
      await new Promise((r) => setTimeout(r, BIRD_RESTART_DELAY_MS));
      if (this.#phase !== 'running') return;
      await this.#bird.start(birdConfig(this.#config, true));
      this.#reachable = true;
      for (const entry of this.#vips.values()) entry.applied = undefined; // a new BIRD starts with all disabled
      await this.#evaluate();
    } catch (err) {
      this.#lastError = err instanceof Error ? err.message : String(err);
      this.#logger.error({ err }, 'announce: BIRD did not start again');
    } finally {
      this.#restarting = false;
    }
  }
}
