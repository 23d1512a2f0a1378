// Reads the engine's shared-memory counters: sums each counter over the
// per-worker blocks, straight from the ArrayBuffer, without a native call.
import { COUNTER_FIELDS, type CounterField, type CounterLayout, type CounterLines } from './native.js';

export type TrafficField = CounterField<'traffic'>;
export type TrafficTotals = Record<TrafficField, number>;
export type UdpField = CounterField<'udp'>;
export type UdpTotals = Record<UdpField, number>;
export type AdmissionField = CounterField<'admission'>;
export type AdmissionTotals = Record<AdmissionField, number>;
export type RelayField = CounterField<'relay'>;
export type RelayTotals = Record<RelayField, number>;

export class CounterReader {
  readonly #layout: CounterLayout;
  readonly #words: BigUint64Array;
  readonly #workers: number;

  constructor(buffer: ArrayBuffer, layout: CounterLayout, workers: number) {
    this.#layout = layout;
    this.#words = new BigUint64Array(buffer);
    this.#workers = workers;
  }

  service(slot: number): TrafficTotals {
    return this.#traffic(this.#layout.serviceOffset + slot * this.#layout.slotStride);
  }

  backend(slot: number): TrafficTotals {
    return this.#traffic(this.#layout.backendOffset + slot * this.#layout.slotStride);
  }

  /** Datagram counters of a protocol: udp service (zeros for tcp). */
  udpService(slot: number): UdpTotals {
    return this.#udp(this.#layout.udpServiceOffset + slot * this.#layout.slotStride);
  }

  udpBackend(slot: number): UdpTotals {
    return this.#udp(this.#layout.udpBackendOffset + slot * this.#layout.slotStride);
  }

  /** A service's admission counters: ACL, client limits, PROXY headers. */
  admission(slot: number): AdmissionTotals {
    return this.#line(this.#layout.admissionOffset + slot * this.#layout.slotStride, 'admission');
  }

  /** A TCP service's kernel relay counters (native/engine/counters.h RelayCounter). */
  relay(slot: number): RelayTotals {
    return this.#line(this.#layout.relayOffset + slot * this.#layout.slotStride, 'relay');
  }

  /** The admission counter at word `index` of the admission line (as events name a refusal's reason). */
  admissionField(index: number): AdmissionField | undefined {
    return COUNTER_FIELDS.admission.find((field) => this.#layout.admission[field] === index);
  }

  worker(field: keyof CounterLayout['worker']): number {
    return this.#sum(this.#layout.worker[field]);
  }

  /** The smallest value of a worker counter across workers (for generations). */
  workerMin(field: keyof CounterLayout['worker']): number {
    const { firstWorkerOffset, workerStride } = this.#layout;
    let min = Infinity;
    for (let worker = 0; worker < this.#workers; worker++) {
      min = Math.min(min, Number(this.#words[firstWorkerOffset + worker * workerStride + this.#layout.worker[field]]));
    }
    return min;
  }

  global(field: keyof CounterLayout['global']): number {
    return Number(this.#words[this.#layout.globalOffset + this.#layout.global[field]]);
  }

  #traffic(base: number): TrafficTotals {
    return this.#line(base, 'traffic');
  }

  #udp(base: number): UdpTotals {
    return this.#line(base, 'udp');
  }

  /** Every field of one counter line starting at `base`, summed over the workers (in COUNTER_FIELDS order). */
  #line<L extends 'traffic' | 'udp' | 'admission' | 'relay'>(base: number, line: L): Record<CounterField<L>, number> {
    const lines: CounterLines = this.#layout;
    const words = lines[line];
    const totals = {} as Record<CounterField<L>, number>;
    for (const field of COUNTER_FIELDS[line] as ReadonlyArray<CounterField<L>>) totals[field] = this.#sum(base + words[field]);
    return totals;
  }

  /** Sum of one word over all worker blocks. Gauges (active) are u64 that
   * wrap within a worker only transiently, so the sum is taken modulo 2^64. */
  #sum(offsetInBlock: number): number {
    let total = 0n;
    const { firstWorkerOffset, workerStride } = this.#layout;
    for (let worker = 0; worker < this.#workers; worker++) {
      total += this.#words[firstWorkerOffset + worker * workerStride + offsetInBlock]!;
    }
    return Number(BigInt.asIntN(64, total));
  }
}
