// Counters as a service or backend has them since it got its slot. A freed
// slot is reused, and the engine's counters are never reset (workers add to
// them without locks), so the totals a slot had when it was handed out are
// kept here and subtracted. Gauges (active) are not baselined: they fall back
// to 0 by themselves when the previous owner's connections close.
import type { AdmissionTotals, CounterReader, RelayTotals, TrafficTotals, UdpTotals } from './counter-reader.js';
import type { FreshSlot } from './slots.js';

export class CounterBaselines {
  readonly #counters: CounterReader;
  /** By service name or backendKey(). */
  readonly #traffic = new Map<string, TrafficTotals>();
  readonly #udp = new Map<string, UdpTotals>();
  /** Services only. */
  readonly #admission = new Map<string, AdmissionTotals>();
  readonly #relay = new Map<string, RelayTotals>();

  constructor(counters: CounterReader) {
    this.#counters = counters;
  }

  /** Remember what a slot's counters hold now, as its new owner's zero. */
  capture({ kind, key, slot }: FreshSlot): void {
    if (kind === 'service') {
      this.#traffic.set(key, this.#counters.service(slot));
      this.#udp.set(key, this.#counters.udpService(slot));
      this.#admission.set(key, this.#counters.admission(slot));
      this.#relay.set(key, this.#counters.relay(slot));
    } else {
      this.#traffic.set(key, this.#counters.backend(slot));
      this.#udp.set(key, this.#counters.udpBackend(slot));
    }
  }

  forget(key: string): void {
    this.#traffic.delete(key);
    this.#udp.delete(key);
    this.#admission.delete(key);
    this.#relay.delete(key);
  }

  serviceTraffic(name: string, slot: number): TrafficTotals {
    return this.#sinceTraffic(this.#traffic.get(name), this.#counters.service(slot));
  }

  backendTraffic(key: string, slot: number): TrafficTotals {
    return this.#sinceTraffic(this.#traffic.get(key), this.#counters.backend(slot));
  }

  serviceUdp(name: string, slot: number): UdpTotals {
    return since(this.#udp.get(name), this.#counters.udpService(slot));
  }

  backendUdp(key: string, slot: number): UdpTotals {
    return since(this.#udp.get(key), this.#counters.udpBackend(slot));
  }

  admission(name: string, slot: number): AdmissionTotals {
    return since(this.#admission.get(name), this.#counters.admission(slot));
  }

  /** kernelActive is a gauge: not baselined. */
  relay(name: string, slot: number): RelayTotals {
    return since(this.#relay.get(name), this.#counters.relay(slot), 'kernelActive');
  }

  #sinceTraffic(base: TrafficTotals | undefined, raw: TrafficTotals): TrafficTotals {
    return since(base, raw, 'active');
  }
}

/** `raw` minus `base`, field by field, except the gauge `keep`. */
function since<T extends Record<string, number>>(base: T | undefined, raw: T, keep?: keyof T): T {
  if (!base) return raw;
  const counted = { ...raw };
  for (const field of Object.keys(raw) as Array<keyof T>) {
    if (field !== keep) counted[field] = (raw[field]! - base[field]!) as T[keyof T];
  }
  return counted;
}
