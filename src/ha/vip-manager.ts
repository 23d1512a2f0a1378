// The virtual IPs on the interface: added when this node becomes Master,
// removed when it stops being Master, through rtnetlink (the native socket's
// setAddress, what `ip addr add|del` does, without spawning a process).
// Each change is one synchronous netlink request per address (the kernel
// answers within the call), so a Master → Backup → Master flap cannot
// interleave two changes: the addresses always end as last asked for.
// After adding, gratuitous ARPs tell the link the addresses moved (keepalived's
// garp_master_repeat / garp_master_delay / garp_master_refresh).
import type { Logger } from '../logger.js';

export interface VirtualIp {
  /** Address only, e.g. 10.200.0.100. */
  address: string;
  /** As `ip addr` takes it, e.g. 10.200.0.100/24. */
  cidr: string;
}

export interface GarpSettings {
  /** Gratuitous ARPs per address right after taking over. */
  repeat: number;
  /** A second burst this long after taking over (0: none). */
  delayMs: number;
  /** Repeat a burst this often while Master (0: never). */
  refreshMs: number;
}

export interface VipCounters {
  vipAdds: number;
  vipRemoves: number;
  vipErrors: number;
  garpSent: number;
  garpErrors: number;
}

/** Add or remove one address; returns 0 or -errno (-EEXIST: already there, -EADDRNOTAVAIL: not there). */
export type AddressOp = (add: boolean, vip: VirtualIp) => number;

const EEXIST = -17;
const EADDRNOTAVAIL = -99;

export class VipManager {
  readonly #interface: string;
  readonly #vips: readonly VirtualIp[];
  readonly #garp: GarpSettings;
  readonly #sendGarp: (address: string) => void;
  readonly #logger: Logger;
  readonly #setAddress: AddressOp;
  readonly counters: VipCounters = { vipAdds: 0, vipRemoves: 0, vipErrors: 0, garpSent: 0, garpErrors: 0 };
  #wanted = false;
  #held = false;
  #garpTimers: NodeJS.Timeout[] = [];

  constructor(options: {
    interface: string;
    vips: readonly VirtualIp[];
    garp: GarpSettings;
    sendGarp: (address: string) => void;
    logger: Logger;
    setAddress: AddressOp;
  }) {
    this.#interface = options.interface;
    this.#vips = options.vips;
    this.#garp = options.garp;
    this.#sendGarp = options.sendGarp;
    this.#logger = options.logger;
    this.#setAddress = options.setAddress;
  }

  /** Whether the addresses are on the interface (as far as our own commands went). */
  get held(): boolean {
    return this.#held;
  }

  /** Hold the addresses (Master) or not; in effect when this returns. */
  set(wanted: boolean): void {
    this.#wanted = wanted;
    this.#reconcile();
  }

  /**
   * Upgrade: the previous process was Master and left the addresses on the
   * interface. Hold them without a gratuitous ARP burst (nothing moved; the
   * link's caches are right); garp_master_refresh goes on as it did. An
   * address that is missing after all is added, and then announced as at
   * any takeover.
   */
  adopt(): void {
    this.#wanted = true;
    let added = false;
    for (const vip of this.#vips) {
      const result = this.#setAddress(true, vip);
      if (result === EEXIST) continue;
      if (result === 0) {
        added = true;
        this.counters.vipAdds++;
        continue;
      }
      this.counters.vipErrors++;
      this.#logger.error({ vip: vip.cidr, interface: this.#interface, errno: -result }, 'adding a virtual IP failed');
    }
    this.#held = true;
    if (added) {
      this.#logger.warn({ vips: this.#vips.map((v) => v.cidr) }, 'upgrade: a virtual IP was missing from the interface: added and announced');
      this.#startGarps();
      return;
    }
    this.#stopGarps();
    if (this.#garp.refreshMs > 0) this.#garpTimers.push(setInterval(() => this.#garpBurst(), this.#garp.refreshMs));
  }

  /** Remove the addresses left by a previous run that died (kill -9) before removing them. */
  removeStale(): void {
    for (const vip of this.#vips) this.#setAddress(false, vip);
  }

  #reconcile(): void {
    while (this.#held !== this.#wanted) {
      const add = this.#wanted;
      if (!add) this.#stopGarps();
      for (const vip of this.#vips) {
        const result = this.#setAddress(add, vip);
        // Already there / already gone is the state we want.
        if (result === 0 || result === (add ? EEXIST : EADDRNOTAVAIL)) {
          if (add) this.counters.vipAdds++;
          else this.counters.vipRemoves++;
          continue;
        }
        this.counters.vipErrors++;
        this.#logger.error({ vip: vip.cidr, interface: this.#interface, errno: -result }, `${add ? 'adding' : 'removing'} a virtual IP failed`);
      }
      this.#held = add;
      this.#logger.info({ vips: this.#vips.map((v) => v.cidr), interface: this.#interface }, add ? 'virtual IPs added' : 'virtual IPs removed');
      if (add && this.#wanted) this.#startGarps();
    }
  }

  #startGarps(): void {
    this.#stopGarps();
    this.#garpBurst();
    if (this.#garp.delayMs > 0) this.#garpTimers.push(setTimeout(() => this.#garpBurst(), this.#garp.delayMs));
    if (this.#garp.refreshMs > 0) this.#garpTimers.push(setInterval(() => this.#garpBurst(), this.#garp.refreshMs));
  }

  #stopGarps(): void {
    for (const timer of this.#garpTimers) clearTimeout(timer);
    this.#garpTimers = [];
  }

  #garpBurst(): void {
    if (!this.#held) return;
    for (let i = 0; i < this.#garp.repeat; i++) {
      for (const vip of this.#vips) {
        try {
          this.#sendGarp(vip.address);
          this.counters.garpSent++;
        } catch (err) {
          this.counters.garpErrors++;
          this.#logger.warn({ err, vip: vip.address }, 'gratuitous ARP failed');
        }
      }
    }
  }

  /** Stop the ARP timers (the addresses stay as they are). */
  close(): void {
    this.#stopGarps();
  }
}
