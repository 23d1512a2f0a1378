// One VRRP instance beside the engine: the native socket, the state machine,
// the virtual IPs, the notify script and tracking, wired together. This is
// what `Runtime.ha` exposes (HaSource) to the admin API and metrics.
import { networkInterfaces } from 'node:os';
import type { HaConfig } from '../config/types.js';
import type { HaSource, HaStatus } from '../control/types.js';
import type { Engine } from '../engine/engine.js';
import { loadNative, type NativeVrrpSocket } from '../engine/native.js';
import type { Logger } from '../logger.js';
import { NotifyRunner } from './notify.js';
import { encodeAdvertisement, parseDatagram, VRRP_MULTICAST_GROUP, type DropReason } from './packet.js';
import { masterDownIntervalMs, VrrpStateMachine, type VrrpState } from './state-machine.js';
import type { HaHandover } from '../upgrade/protocol.js';
import { checkDataPlane, trackedPriority } from './tracking.js';
import { VipManager } from './vip-manager.js';

/** How often tracking looks at the engine. */
const TRACK_INTERVAL_MS = 250;

const DROP_LOGS_PER_SECOND = 20;

const DROP_REASONS: readonly DropReason[] = [
  'truncated',
  'badTtl',
  'badVersion',
  'badType',
  'badChecksum',
  'notVrrp',
  'vridMismatch',
  'addressMismatch',
  'notPeer',
];

export interface HaInstanceOptions {
  config: HaConfig;
  logger: Logger;
  /** Tracked when given: a stopped engine or a tracked service with no backend up. */
  engine?: Pick<Engine, 'stats' | 'stopped'>;
  /** While true, a lower-priority Master is not preempted (SessionSync.resyncing: this node has not
   * yet learnt the clients that Master serves). */
  holdPreempt?: () => boolean;
}

export class HaInstance implements HaSource {
  readonly #config: HaConfig;
  readonly #logger: Logger;
  readonly #engine: HaInstanceOptions['engine'];
  readonly #socket: NativeVrrpSocket;
  readonly #machine: VrrpStateMachine;
  readonly #vips: VipManager;
  readonly #notify: NotifyRunner;
  readonly #source: string;
  readonly #name: string;
  readonly #counters: Record<string, number> = {
    advertsSent: 0,
    advertsReceived: 0,
    sendErrors: 0,
    priorityZeroSent: 0,
    priorityZeroReceived: 0,
    nativeQueueDropped: 0,
    intervalMismatch: 0,
    ...Object.fromEntries(DROP_REASONS.map((r) => [r, 0])),
  };
  #transitions = 0;
  #trackTimer: NodeJS.Timeout | undefined;
  #trackReasons = '';
  #stopping: Promise<void> | undefined;
  #sendErrorLoggedAt = 0;
  /** Drop-log budget: at most DROP_LOGS_PER_SECOND lines a second, the rest only counted (a flood must not become a log flood). */
  #dropLogWindow = 0;
  #dropLogsInWindow = 0;

  /** Opens the sockets (throws Error{code: EPERM, ENODEV...}); call start() to run. */
  constructor(options: HaInstanceOptions) {
    const config = options.config;
    this.#config = config;
    this.#engine = options.engine;
    this.#name = `VI_${config.vrid}`;
    this.#logger = options.logger.child({ ha: this.#name, interface: config.interface });
    this.#source = config.sourceAddress ?? primaryAddress(config.interface, config.virtualIps.map((v) => v.address));
    this.#socket = new (loadNative().VrrpSocket)({
      interface: config.interface,
      joinGroup: config.unicastPeers.length === 0,
      onPackets: (packets, dropped) => this.#onPackets(packets, dropped),
    });
    this.#vips = new VipManager({
      interface: config.interface,
      vips: config.virtualIps,
      garp: config.garp,
      sendGarp: (address) => this.#socket.garp(address),
      logger: this.#logger,
      setAddress: (add, vip) => this.#socket.setAddress(add, vip.address, Number(vip.cidr.split('/')[1])),
    });
    this.#notify = new NotifyRunner(config.notify, this.#name, this.#logger);
    this.#machine = new VrrpStateMachine(
      {
        priority: config.priority,
        advertIntervalMs: config.advertIntervalMs,
        preempt: config.preempt,
        preemptDelayMs: config.preemptDelayMs,
        primaryAddress: this.#source,
        ...(options.holdPreempt && { holdPreempt: this.#holdPreempt(options.holdPreempt) }),
      },
      {
        advertise: (priority) => this.#advertise(priority),
        takeAddresses: () => this.#vips.set(true),
        releaseAddresses: () => this.#vips.set(false),
        transition: (from, to, reason) => this.#onTransition(from, to, reason),
      },
    );
  }

  /** `hold`, logging when it starts and stops holding preemption back. */
  #holdPreempt(hold: () => boolean): () => boolean {
    let holding = false;
    return () => {
      const now = hold();
      if (now !== holding) this.#logger.info(now ? 'preemption held: session sync is learning the Master\'s clients' : 'preemption no longer held');
      holding = now;
      return now;
    };
  }

  /** Remove VIPs a killed predecessor left behind, then enter Backup (or Fault when tracking fails). */
  async start(): Promise<void> {
    this.#vips.removeStale();
    this.#logger.info(
      {
        vrid: this.#config.vrid,
        priority: this.#config.priority,
        source: this.#source,
        mode: this.#config.unicastPeers.length > 0 ? `unicast to ${this.#config.unicastPeers.join(', ')}` : `multicast ${VRRP_MULTICAST_GROUP}`,
        advertIntervalMs: this.#config.advertIntervalMs,
        masterDownIntervalMs: Math.round(masterDownIntervalMs(this.#config.priority, this.#config.advertIntervalMs)),
        vips: this.#config.virtualIps.map((v) => v.cidr),
      },
      'VRRP instance starting',
    );
    this.#track();
    this.#machine.start();
    if (this.#engine !== undefined) this.#trackTimer = setInterval(() => this.#track(), TRACK_INTERVAL_MS);
  }

  /**
   * Upgrade, the old process: stop silently and return the state for the new
   * one (state-machine.ts freeze: a Master's last advert, no priority 0, the
   * VIPs stay on the interface). Undefined when there is nothing to hand over
   * (stopping, or in Fault): the new process then starts as usual. stop()
   * after this only waits for the notify script.
   */
  handOver(): HaHandover | undefined {
    if (this.#stopping !== undefined) return undefined;
    const frozen = this.#machine.freeze();
    if (frozen === undefined) return undefined;
    if (this.#trackTimer) clearInterval(this.#trackTimer);
    this.#vips.close();
    this.#socket.close();
    this.#stopping = this.#notify.idle().then(() => {
      this.#logger.info({ state: frozen.state, transitions: this.#transitions }, 'VRRP instance handed over to the new process');
    });
    return {
      interface: this.#config.interface,
      vrid: this.#config.vrid,
      vips: this.#config.virtualIps.map((v) => v.cidr),
      transitions: this.#transitions,
      ...frozen,
    };
  }

  /** Whether `handover` is this instance's virtual router (same interface, VRID and VIPs). */
  canResume(handover: HaHandover): boolean {
    const ours = this.#config.virtualIps.map((v) => v.cidr).sort();
    const theirs = [...handover.vips].sort();
    return handover.interface === this.#config.interface && handover.vrid === this.#config.vrid && ours.join() === theirs.join();
  }

  /**
   * Upgrade, the new process: instead of start(), go on as the old process
   * was (see canResume). A Master keeps the VIPs without a gratuitous ARP burst
   * and advertises at once; a Backup keeps its Master and timer. Nothing is a
   * transition: no notify script runs.
   */
  resume(handover: HaHandover): void {
    this.#transitions = handover.transitions;
    this.#logger.info(
      { vrid: this.#config.vrid, priority: this.#config.priority, state: handover.state, source: this.#source, vips: this.#config.virtualIps.map((v) => v.cidr) },
      `VRRP instance taken over from the previous process: ${handover.state === 'master' ? 'Master' : 'Backup'}`,
    );
    this.#track();
    if (handover.state === 'master') this.#vips.adopt();
    const { state, masterAdverIntervalMs, masterAddress, masterDownAt, lowerMasterSince } = handover;
    this.#machine.resume({
      state,
      masterAdverIntervalMs,
      ...(masterAddress !== undefined && { masterAddress }),
      ...(masterDownAt !== undefined && { masterDownAt }),
      ...(lowerMasterSince !== undefined && { lowerMasterSince }),
    });
    if (this.#engine !== undefined) this.#trackTimer = setInterval(() => this.#track(), TRACK_INTERVAL_MS);
  }

  /** Graceful stop: a Master sends priority 0 (the Backup takes over after its skew time) and removes the VIPs. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    if (this.#trackTimer) clearInterval(this.#trackTimer);
    this.#machine.stop();
    this.#vips.set(false);
    this.#vips.close();
    this.#socket.close();
    await this.#notify.idle();
    this.#logger.info({ transitions: this.#transitions, counters: this.status().counters }, 'VRRP instance stopped');
  }

  status(): HaStatus {
    return {
      state: this.#machine.state,
      vrid: this.#config.vrid,
      priority: this.#config.priority,
      effectivePriority: this.#machine.priority,
      virtualIps: this.#config.virtualIps.map((v) => v.cidr),
      ...(this.#machine.masterAddress === undefined ? {} : { masterAddress: this.#machine.masterAddress }),
      transitions: this.#transitions,
      counters: { ...this.#counters, ...this.#vips.counters, notifyRuns: this.#notify.runs, notifyFailures: this.#notify.failures },
    };
  }

  #advertise(priority: number): void {
    const advert = {
      vrid: this.#config.vrid,
      priority,
      intervalCs: Math.round(this.#config.advertIntervalMs / 10),
      addresses: this.#config.virtualIps.map((v) => v.address),
    };
    const destinations = this.#config.unicastPeers.length > 0 ? this.#config.unicastPeers : [VRRP_MULTICAST_GROUP];
    for (const destination of destinations) {
      try {
        this.#socket.send(destination, this.#source, encodeAdvertisement(advert, this.#source, destination));
        this.#counters.advertsSent!++;
        if (priority === 0) this.#counters.priorityZeroSent!++;
      } catch (err) {
        this.#counters.sendErrors!++;
        // An interface that is down fails every advert: one line a second is enough.
        const now = Date.now();
        if (now - this.#sendErrorLoggedAt >= 1000) {
          this.#sendErrorLoggedAt = now;
          this.#logger.warn({ err, destination, sendErrors: this.#counters.sendErrors }, 'sending a VRRP advertisement failed');
        }
      }
    }
  }

  #onPackets(packets: Buffer[], dropped: number): void {
    this.#counters.nativeQueueDropped! += dropped;
    const rules = { vrid: this.#config.vrid, addresses: this.#config.virtualIps.map((v) => v.address) };
    for (const packet of packets) {
      const result = parseDatagram(packet, rules);
      if (!result.ok) {
        this.#counters[result.reason]!++;
        // Another virtual router on the link is normal; everything else is worth a line.
        if (this.#mayLogDrop()) {
          if (result.reason === 'vridMismatch') this.#logger.trace({ reason: result.reason }, result.detail);
          else this.#logger.debug({ reason: result.reason }, `VRRP packet dropped: ${result.detail}`);
        }
        continue;
      }
      const advert = result.advert;
      if (this.#config.unicastPeers.length > 0 && !this.#config.unicastPeers.includes(advert.source)) {
        this.#counters.notPeer!++;
        if (this.#mayLogDrop()) this.#logger.debug({ reason: 'notPeer', source: advert.source }, 'VRRP advert dropped: not from a configured unicast peer');
        continue;
      }
      if (advert.source === this.#source) continue; // our own, looped back by a bridge
      this.#counters.advertsReceived!++;
      if (advert.priority === 0) this.#counters.priorityZeroReceived!++;
      // RFC 5798 6.4.2: a Backup adopts the Master's interval; a difference is worth seeing.
      if (advert.intervalCs * 10 !== this.#config.advertIntervalMs) this.#counters.intervalMismatch!++;
      this.#machine.receive(advert);
    }
  }

  #mayLogDrop(): boolean {
    const window = Math.floor(Date.now() / 1000);
    if (window !== this.#dropLogWindow) {
      if (this.#dropLogsInWindow > DROP_LOGS_PER_SECOND) {
        this.#logger.warn({ dropped: this.#dropLogsInWindow }, 'VRRP packets dropped in the last second (counted; only the first were logged)');
      }
      this.#dropLogWindow = window;
      this.#dropLogsInWindow = 0;
    }
    return ++this.#dropLogsInWindow <= DROP_LOGS_PER_SECOND;
  }

  #onTransition(from: VrrpState, to: VrrpState, reason: string): void {
    this.#transitions++;
    this.#logger.info({ from, to, reason, priority: this.#machine.priority, transitions: this.#transitions }, `VRRP ${from} -> ${to}`);
    // Leaving Fault passes through Initialize on its way to Backup: only a real stop is STOP.
    if (to === 'initialize' && from === 'fault') return;
    const state = to === 'master' ? 'MASTER' : to === 'backup' ? 'BACKUP' : to === 'fault' ? 'FAULT' : 'STOP';
    void this.#notify.notify(state, this.#machine.priority);
  }

  #track(): void {
    if (this.#engine === undefined) return;
    const settings = this.#config.track;
    const verdict = checkDataPlane(this.#engine, settings);
    const next = trackedPriority(this.#config.priority, settings, verdict);
    const reasons = verdict.reasons.join('; ');
    if (reasons !== this.#trackReasons) {
      if (verdict.ok) this.#logger.info('tracking: the data plane can serve again');
      else this.#logger.warn({ reasons: verdict.reasons, priority: next.priority, fault: next.fault }, 'tracking: the data plane cannot serve');
      this.#trackReasons = reasons;
    }
    this.#machine.setPriority(next.priority);
    this.#machine.setFault(next.fault, next.fault ? `tracking: ${reasons}` : 'tracking: recovered');
  }
}

/** The interface's first IPv4 address that is not one of our VIPs: the source of our adverts. */
function primaryAddress(ifname: string, vips: readonly string[]): string {
  const addresses = networkInterfaces()[ifname];
  if (addresses === undefined) {
    throw Object.assign(new Error(`no interface ${ifname}`), { code: 'ENODEV' });
  }
  const found = addresses.find((a) => a.family === 'IPv4' && !vips.includes(a.address));
  if (found === undefined) {
    throw Object.assign(new Error(`interface ${ifname} has no IPv4 address of its own to send VRRP adverts from`), { code: 'EADDRNOTAVAIL' });
  }
  return found.address;
}
