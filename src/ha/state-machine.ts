// The VRRP state machine of RFC 5798 section 6.4, one virtual router, without
// I/O: packets, addresses and time come in, actions go out through
// StateActions. Timers are injected so tests can drive it step by step.
//
//   state       event                          action                                   next
//   ----------  -----------------------------  ---------------------------------------  ----------
//   initialize  start, priority 255            send advert, take VIPs                   master
//   initialize  start                          Master_Down_Timer = Master_Down_Interval backup
//   backup      Master_Down_Timer fires        send advert, take VIPs                   master
//   backup      advert, priority 0             Master_Down_Timer = Skew_Time            backup
//   backup      advert, preempt off or         learn Master_Adver_Interval,             backup
//               priority >= ours (or within    Master_Down_Timer = Master_Down_Interval
//               preempt_delay, or while
//               holdPreempt() says so)
//   backup      advert, lower priority,        ignore (the timer fires: we preempt)     backup
//               preempt on
//   master      Adver_Timer fires              send advert                              master
//   master      advert, priority 0             send advert at once                      master
//   master      advert, higher priority, or    release VIPs, Master_Down_Timer =        backup
//               equal and greater address      Master_Down_Interval
//   master      advert, lower priority         ignore (it yields on our adverts)        master
//   master      stop                           send priority-0 advert, release VIPs     initialize
//   backup      stop                           cancel timers                            initialize
//   any         tracking fails (fault)         master: priority-0 advert, release VIPs  fault
//   fault       tracking recovers              as start                                 backup/master
//   master      freeze (upgrade: handed over)  send advert, keep VIPs, stop timers      initialize
//   backup      freeze                         stop timers                              initialize
//   initialize  resume(master) (upgrade)       send advert (VIPs already held)          master
//   initialize  resume(backup)                 Master_Down_Timer = what was left        backup
//
// freeze/resume carry a Master or Backup from one process to the next on an
// upgrade (src/upgrade/): neither is a transition (no notify script runs, the
// peer sees no priority 0 and no change of Master).
//
// Intervals are centiseconds on the wire; here everything is milliseconds:
//   Skew_Time            = ((256 - Priority) * Master_Adver_Interval) / 256
//   Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time
import { ipv4ToNumber, type ReceivedAdvertisement } from './packet.js';

export type VrrpState = 'initialize' | 'backup' | 'master' | 'fault';

export interface Timers {
  now(): number;
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export const realTimers: Timers = {
  now: () => performance.now(),
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface StateActions {
  /** Send one advertisement with this priority (0 on stop or fault). */
  advertise(priority: number): void;
  /** Now Master: take the virtual IPs and announce them. */
  takeAddresses(): void;
  /** No longer Master: give the virtual IPs up. */
  releaseAddresses(): void;
  transition(from: VrrpState, to: VrrpState, reason: string): void;
}

/** What freeze() returns and resume() takes: a running Backup or Master. Times are epoch ms. */
export interface FrozenState {
  state: 'master' | 'backup';
  masterAddress?: string;
  masterAdverIntervalMs: number;
  /** Backup: when its Master_Down_Timer would have fired. */
  masterDownAt?: number;
  /** Backup with preempt_delay: since when a lower-priority Master has been seen. */
  lowerMasterSince?: number;
}

export interface StateMachineOptions {
  /** 1..255 (255: the address owner). */
  priority: number;
  advertIntervalMs: number;
  preempt: boolean;
  preemptDelayMs: number;
  /** Our primary IPv4 address on the interface, for the equal-priority tie-break. */
  primaryAddress: string;
  /** While true, a lower-priority Master is not preempted (session sync still learning the
   * Master's clients after a restart); a Backup with no Master still takes over as usual. */
  holdPreempt?: () => boolean;
}

export function skewTimeMs(priority: number, masterAdverIntervalMs: number): number {
  return ((256 - priority) * masterAdverIntervalMs) / 256;
}

export function masterDownIntervalMs(priority: number, masterAdverIntervalMs: number): number {
  return 3 * masterAdverIntervalMs + skewTimeMs(priority, masterAdverIntervalMs);
}

export class VrrpStateMachine {
  readonly #options: StateMachineOptions;
  readonly #actions: StateActions;
  readonly #timers: Timers;
  #state: VrrpState = 'initialize';
  #priority: number;
  #masterAdverIntervalMs: number;
  #masterAddress: string | undefined;
  #adverTimer: unknown;
  #masterDownTimer: unknown;
  /** When #masterDownTimer fires (timers.now() ms). */
  #masterDownAt: number | undefined;
  /** preempt_delay: when a lower-priority Master was first seen in this Backup stint. */
  #lowerMasterSince: number | undefined;
  #running = false;
  #faulted = false;

  constructor(options: StateMachineOptions, actions: StateActions, timers: Timers = realTimers) {
    this.#options = options;
    this.#actions = actions;
    this.#timers = timers;
    this.#priority = options.priority;
    this.#masterAdverIntervalMs = options.advertIntervalMs;
  }

  get state(): VrrpState {
    return this.#state;
  }

  /** The priority we advertise now (the configured one, lowered by tracking). */
  get priority(): number {
    return this.#priority;
  }

  /** The Master's address as last seen (ours while Master). */
  get masterAddress(): string | undefined {
    return this.#state === 'master' ? this.#options.primaryAddress : this.#masterAddress;
  }

  get masterAdverIntervalMs(): number {
    return this.#masterAdverIntervalMs;
  }

  /** RFC 5798 Startup event. */
  start(): void {
    this.#running = true;
    if (this.#faulted) this.#enter('fault', 'tracking reports a fault at start');
    else this.#startup('start');
  }

  /** RFC 5798 Shutdown event: a Master hands over at once with a priority-0 advert. */
  stop(): void {
    this.#running = false;
    this.#cancelTimers();
    if (this.#state === 'master') {
      this.#actions.advertise(0);
      this.#actions.releaseAddresses();
    }
    this.#enter('initialize', 'stop');
  }

  /**
   * Upgrade, the old process: stop silently and say where we were. A Master
   * sends one last advert (the peer's Master_Down_Timer restarts: the next
   * process has a full interval to take over) and keeps its VIPs; no priority
   * 0, no transition. Undefined when neither Master nor Backup (then the
   * next process starts as usual).
   */
  freeze(): FrozenState | undefined {
    if (!this.#running) return undefined;
    const state = this.#state;
    let frozen: FrozenState | undefined;
    if (state === 'master') {
      this.#actions.advertise(this.#priority);
      frozen = { state, masterAdverIntervalMs: this.#masterAdverIntervalMs };
    } else if (state === 'backup') {
      const nowEpoch = Date.now();
      const toEpoch = (at: number): number => nowEpoch + (at - this.#timers.now());
      frozen = { state, masterAdverIntervalMs: this.#masterAdverIntervalMs };
      if (this.#masterAddress !== undefined) frozen.masterAddress = this.#masterAddress;
      if (this.#masterDownAt !== undefined) frozen.masterDownAt = toEpoch(this.#masterDownAt);
      if (this.#lowerMasterSince !== undefined) frozen.lowerMasterSince = toEpoch(this.#lowerMasterSince);
    }
    this.#running = false;
    this.#cancelTimers();
    // Quietly (no transition): the state is the next process's now.
    this.#state = 'initialize';
    return frozen;
  }

  /**
   * Upgrade, the new process: instead of start(), go on from what the old one
   * froze. A Master advertises at once (its VIPs are still on the interface:
   * the caller keeps them, without a gratuitous ARP); a Backup keeps the
   * Master it knew and the time its Master_Down_Timer had left. Tracking
   * (setFault/setPriority) applies as usual from here on.
   */
  resume(frozen: FrozenState): void {
    this.#running = true;
    if (this.#faulted) {
      this.#enter('fault', 'tracking reports a fault after the upgrade');
      if (frozen.state === 'master') {
        this.#actions.advertise(0);
        this.#actions.releaseAddresses();
      }
      return;
    }
    this.#state = frozen.state;
    this.#masterAdverIntervalMs = frozen.masterAdverIntervalMs;
    if (frozen.state === 'master') {
      this.#sendAdvert();
      return;
    }
    this.#masterAddress = frozen.masterAddress;
    const nowEpoch = Date.now();
    const toMonotonic = (at: number): number => this.#timers.now() - (nowEpoch - at);
    if (frozen.lowerMasterSince !== undefined) this.#lowerMasterSince = toMonotonic(frozen.lowerMasterSince);
    const full = masterDownIntervalMs(this.#priority, this.#masterAdverIntervalMs);
    const left = frozen.masterDownAt === undefined ? full : Math.min(full, Math.max(0, frozen.masterDownAt - nowEpoch));
    this.#armMasterDown(left);
  }

  /** Tracking: a new effective priority (1..254). A Master advertises it at once. */
  setPriority(priority: number): void {
    if (priority === this.#priority) return;
    this.#priority = priority;
    if (this.#state === 'master') this.#sendAdvert();
  }

  /** Tracking: the data plane cannot serve (true) or can again (false). */
  setFault(fault: boolean, reason: string): void {
    if (fault === this.#faulted) return;
    this.#faulted = fault;
    if (!this.#running) return;
    if (fault) {
      this.#cancelTimers();
      if (this.#state === 'master') {
        this.#actions.advertise(0);
        this.#actions.releaseAddresses();
      }
      this.#enter('fault', reason);
    } else {
      this.#enter('initialize', reason);
      this.#startup(reason);
    }
  }

  /** An advertisement that passed the receive checks (packet.ts). */
  receive(advert: ReceivedAdvertisement): void {
    if (!this.#running) return;
    const intervalMs = advert.intervalCs * 10;
    if (this.#state === 'backup') {
      if (advert.priority === 0) {
        this.#masterAddress = advert.source;
        this.#armMasterDown(skewTimeMs(this.#priority, this.#masterAdverIntervalMs));
        return;
      }
      const lower = advert.priority < this.#priority;
      if (!this.#options.preempt || !lower || this.#holdingPreempt()) {
        if (!lower) this.#lowerMasterSince = undefined;
        this.#masterAddress = advert.source;
        this.#masterAdverIntervalMs = intervalMs;
        this.#armMasterDown(masterDownIntervalMs(this.#priority, this.#masterAdverIntervalMs));
      }
      return;
    }
    if (this.#state === 'master') {
      if (advert.priority === 0) {
        this.#sendAdvert();
        return;
      }
      const higher =
        advert.priority > this.#priority ||
        (advert.priority === this.#priority && ipv4ToNumber(advert.source) > ipv4ToNumber(this.#options.primaryAddress));
      if (!higher) return;
      this.#cancelTimers();
      this.#actions.releaseAddresses();
      this.#masterAddress = advert.source;
      this.#masterAdverIntervalMs = intervalMs;
      this.#enter('backup', `advert from ${advert.source} with priority ${advert.priority} (ours ${this.#priority})`);
      this.#armMasterDown(masterDownIntervalMs(this.#priority, this.#masterAdverIntervalMs));
    }
  }

  /** Whether holdPreempt or preempt_delay still holds off preempting a lower-priority Master. */
  #holdingPreempt(): boolean {
    if (this.#options.holdPreempt?.() === true) return true;
    if (this.#options.preemptDelayMs <= 0) return false;
    const now = this.#timers.now();
    this.#lowerMasterSince ??= now;
    return now - this.#lowerMasterSince < this.#options.preemptDelayMs;
  }

  #startup(reason: string): void {
    if (this.#priority === 255) {
      this.#becomeMaster(`${reason}: address owner (priority 255)`);
      return;
    }
    this.#masterAdverIntervalMs = this.#options.advertIntervalMs;
    this.#masterAddress = undefined;
    this.#lowerMasterSince = undefined;
    this.#enter('backup', reason);
    this.#armMasterDown(masterDownIntervalMs(this.#priority, this.#masterAdverIntervalMs));
  }

  #becomeMaster(reason: string): void {
    this.#cancelTimers();
    this.#sendAdvert();
    this.#enter('master', reason);
    this.#actions.takeAddresses();
  }

  #sendAdvert(): void {
    this.#actions.advertise(this.#priority);
    if (this.#adverTimer !== undefined) this.#timers.clear(this.#adverTimer);
    this.#adverTimer = this.#timers.set(() => {
      this.#adverTimer = undefined;
      if (this.#state === 'master') this.#sendAdvert();
    }, this.#options.advertIntervalMs);
  }

  #armMasterDown(ms: number): void {
    if (this.#masterDownTimer !== undefined) this.#timers.clear(this.#masterDownTimer);
    this.#masterDownAt = this.#timers.now() + ms;
    this.#masterDownTimer = this.#timers.set(() => {
      this.#masterDownTimer = undefined;
      this.#masterDownAt = undefined;
      if (this.#state === 'backup') {
        const last = this.#masterAddress === undefined ? 'no Master heard' : `no advert from ${this.#masterAddress}`;
        this.#becomeMaster(`${last} for ${Math.round(ms)}ms (Master_Down_Timer)`);
      }
    }, ms);
  }

  #cancelTimers(): void {
    if (this.#adverTimer !== undefined) this.#timers.clear(this.#adverTimer);
    if (this.#masterDownTimer !== undefined) this.#timers.clear(this.#masterDownTimer);
    this.#adverTimer = this.#masterDownTimer = this.#masterDownAt = undefined;
  }

  #enter(next: VrrpState, reason: string): void {
    const previous = this.#state;
    this.#state = next;
    if (previous !== next) this.#actions.transition(previous, next, reason);
  }
}
