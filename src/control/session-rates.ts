// Session rates (new connections per second; flows for protocol: udp) per
// service and backend, as HAProxy's `rate` and `rate_max`: the engine's
// `accepted` counters are read every INTERVAL_MS (one stats read for all),
// and a rate is the growth between the last two reads. `max` is the highest
// rate seen since start. Sampled, so a burst shorter than the interval is
// averaged over it (the counters themselves miss nothing). JS thread only;
// the timer is unref'd and stops with stop() or once the engine has stopped.
import type { EngineStats } from '../engine/stats.js';

export const INTERVAL_MS = 1000;

export interface SessionRate {
  /** Connections per second over the last interval. */
  rate: number;
  /** The highest `rate` since start. */
  max: number;
}

interface Sample {
  accepted: number;
  rate: number;
  max: number;
}

export class SessionRates {
  readonly #read: () => EngineStats | undefined;
  /** By service name, and by `service/backend` for backends. */
  readonly #samples = new Map<string, Sample>();
  #lastAt = 0;
  #timer: NodeJS.Timeout | undefined;

  /** `read`: the engine's stats now, or undefined once it has stopped. */
  constructor(read: () => EngineStats | undefined, intervalMs = INTERVAL_MS) {
    this.#read = read;
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
  }

  /** Read the counters now and update every rate (the timer calls this; tests may too). */
  sample(now = Date.now()): void {
    const stats = this.#read();
    if (stats === undefined) return this.stop();
    const seconds = (now - this.#lastAt) / 1000;
    const seen = new Set<string>();
    const note = (key: string, accepted: number): void => {
      seen.add(key);
      const before = this.#samples.get(key);
      if (before === undefined || this.#lastAt === 0 || seconds <= 0) {
        this.#samples.set(key, { accepted, rate: 0, max: before?.max ?? 0 });
        return;
      }
      // A counter that went back (a slot handed to a new owner) restarts from it.
      const rate = accepted >= before.accepted ? (accepted - before.accepted) / seconds : 0;
      this.#samples.set(key, { accepted, rate, max: Math.max(before.max, rate) });
    };
    for (const service of stats.services) {
      note(service.name, service.accepted);
      for (const backend of service.backends) note(`${service.name}/${backend.address}`, backend.accepted);
    }
    for (const key of [...this.#samples.keys()]) if (!seen.has(key)) this.#samples.delete(key);
    this.#lastAt = now;
  }

  service(name: string): SessionRate {
    return this.#rate(name);
  }

  backend(service: string, address: string): SessionRate {
    return this.#rate(`${service}/${address}`);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #rate(key: string): SessionRate {
    const sample = this.#samples.get(key);
    return { rate: sample?.rate ?? 0, max: sample?.max ?? 0 };
  }
}
