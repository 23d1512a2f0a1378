// A VRRP state machine (src/ha/state-machine.ts) on a manual clock, every
// action it takes logged as a line ("advert 100 @300", "Backup->Master @360"):
// what the state machine's unit tests and the upgrade hand-over tests drive.
import type { ReceivedAdvertisement } from '../../src/ha/packet.js';
import { VrrpStateMachine, type StateMachineOptions, type Timers } from '../../src/ha/state-machine.js';

export class ManualClock implements Timers {
  nowMs = 0;
  #timers = new Map<number, { at: number; fn: () => void }>();
  #next = 1;
  now(): number {
    return this.nowMs;
  }
  set(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#timers.set(id, { at: this.nowMs + ms, fn });
    return id;
  }
  clear(handle: unknown): void {
    this.#timers.delete(handle as number);
  }
  /** Move time forward, firing due timers in order. */
  advance(ms: number): void {
    const until = this.nowMs + ms;
    for (;;) {
      const due = [...this.#timers.entries()].filter(([, v]) => v.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.#timers.delete(due[0]);
      this.nowMs = due[1].at;
      due[1].fn();
    }
    this.nowMs = until;
  }
}

export function machine(options: Partial<StateMachineOptions> = {}) {
  const clock = new ManualClock();
  const log: string[] = [];
  const sm = new VrrpStateMachine(
    { priority: 100, advertIntervalMs: 100, preempt: true, preemptDelayMs: 0, primaryAddress: '10.0.0.2', ...options },
    {
      advertise: (p) => log.push(`advert ${p} @${clock.nowMs}`),
      takeAddresses: () => log.push(`take @${clock.nowMs}`),
      releaseAddresses: () => log.push(`release @${clock.nowMs}`),
      transition: (from, to) => log.push(`${from}->${to} @${clock.nowMs}`),
    },
    clock,
  );
  return { sm, clock, log };
}

export const advert = (priority: number, source = '10.0.0.1', intervalCs = 10): ReceivedAdvertisement => ({
  vrid: 51, priority, intervalCs, addresses: ['10.0.0.100'], source, destination: '224.0.0.18',
});
