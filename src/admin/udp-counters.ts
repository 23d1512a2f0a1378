// A protocol: udp service's flow table as operators read it: which counters,
// in which order, under which word. The status page and `fulcrum status`
// both print from this one list, so the two views agree.
//
// For a udp service the engine's TrafficCounters count flows, not
// connections (see UdpBackendStats): a service's active / accepted / failed
// are flows active / created / dropped, a backend's are the flows it holds /
// has been given (created or moved to it) / ICMP unreachable answers and
// send errors. Both views label those columns accordingly.
import type { UdpServiceStats } from '../engine/stats.js';

/** A counter as both views print it: its field, the word after the number, what it counts. */
export interface LabelledCounter<K extends string> {
  key: K;
  /** The word after the number: "3 created". */
  label: string;
  /** What it counts (the status page's tooltip). */
  meaning: string;
}

export type FlowCounter = LabelledCounter<keyof UdpServiceStats>;

/** The flow counters, in the order both views print them. */
export const FLOW_COUNTERS: readonly FlowCounter[] = [
  { key: 'flowsActive', label: 'active', meaning: 'flows open now' },
  { key: 'flowsCreated', label: 'created', meaning: 'flows created since start' },
  { key: 'flowsExpired', label: 'expired', meaning: 'ended after timeouts.idle without a datagram either way' },
  { key: 'flowsEvicted', label: 'evicted', meaning: 'ended to make room under max_flows (the longest idle)' },
  { key: 'flowsCompleted', label: 'completed', meaning: 'ended after udp.responses replies' },
  { key: 'flowsMoved', label: 'moved', meaning: 'sent to another backend because theirs went down, refused (ICMP) or left the config' },
  { key: 'flowsDropped', label: 'dropped', meaning: 'new flows not created: no backend available, max_flows full with nothing to evict, no socket' },
];

export const DATAGRAMS_DROPPED_MEANING = 'received but not forwarded: no flow, truncated, a full socket buffer, beyond udp.responses';

/** "flows: 2 active, 3 created, ...; datagrams dropped: 0" (one line of `fulcrum status`). */
export function flowTableText(udp: UdpServiceStats): string {
  const flows = FLOW_COUNTERS.map((c) => `${udp[c.key]} ${c.label}`).join(', ');
  return `flows: ${flows}; datagrams dropped: ${udp.datagramsDropped}`;
}
