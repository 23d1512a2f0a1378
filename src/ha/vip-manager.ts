// The virtual IPs on the interface: added when this node becomes Master,
// removed when it stops being Master, through iproute2 (`ip addr add|del`).
// Changes are serialized: a Master → Backup → Master flap while a command
// runs ends with the addresses in the state last asked for, never a mix.
// After adding, gratuitous ARPs tell the link the addresses moved (keepalived's
// garp_master_repeat / garp_master_delay / garp_master_refresh).
import { execFile } from 'node:child_process';
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

/** Runs `ip ARGS`; resolves to the stderr text on failure (undefined on success). */
export type IpRunner = (args: string[]) => Promise<string | undefined>;

export const runIp: IpRunner = (args) =>
  new Promise((resolve) => {
    execFile('ip', args, { timeout: 5000 }, (err, _stdout, stderr) => resolve(err ? (stderr.trim() || err.message) : undefined));
  });

export class VipManager {
  readonly #interface: string;
  readonly #vips: readonly VirtualIp[];
  readonly #garp: GarpSettings;
  readonly #sendGarp: (address: string) => void;
  readonly #logger: Logger;
  readonly #ip: IpRunner;
  readonly counters: VipCounters = { vipAdds: 0, vipRemoves: 0, vipErrors: 0, garpSent: 0, garpErrors: 0 };
  #wanted = false;
  #held = false;
  #working: Promise<void> | undefined;
  #garpTimers: NodeJS.Timeout[] = [];

  constructor(options: {
    interface: string;
    vips: readonly VirtualIp[];
    garp: GarpSettings;
    sendGarp: (address: string) => void;
    logger: Logger;
    ip?: IpRunner;
  }) {
    this.#interface = options.interface;
    this.#vips = options.vips;
    this.#garp = options.garp;
    this.#sendGarp = options.sendGarp;
    this.#logger = options.logger;
    this.#ip = options.ip ?? runIp;
  }

  /** Whether the addresses are on the interface (as far as our own commands went). */
  get held(): boolean {
    return this.#held;
  }

  /** Ask for the addresses to be held (Master) or not; returns when the last request is in effect. */
  set(wanted: boolean): Promise<void> {
    this.#wanted = wanted;
    this.#working ??= this.#reconcile().finally(() => {
      this.#working = undefined;
    });
    return this.#working;
  }

  /** Remove the addresses left by a previous run that died (kill -9) before removing them. */
  async removeStale(): Promise<void> {
    await Promise.all(this.#vips.map((vip) => this.#ip(['-4', 'addr', 'del', vip.cidr, 'dev', this.#interface])));
  }

  async #reconcile(): Promise<void> {
    while (this.#held !== this.#wanted) {
      const add = this.#wanted;
      if (!add) this.#stopGarps();
      const verb = add ? 'add' : 'del';
      const results = await Promise.all(this.#vips.map((vip) => this.#ip(['-4', 'addr', verb, vip.cidr, 'dev', this.#interface])));
      results.forEach((error, i) => {
        const vip = this.#vips[i]!;
        // Already there / already gone is the state we want.
        if (error === undefined || /File exists|Cannot assign requested address/.test(error)) {
          if (add) this.counters.vipAdds++;
          else this.counters.vipRemoves++;
          return;
        }
        this.counters.vipErrors++;
        this.#logger.error({ vip: vip.cidr, interface: this.#interface, error }, `ip addr ${verb} failed`);
      });
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
