// A service's admission counters as operators read them: who was turned away
// before any backend was touched (allow/deny, client_limits) and what became
// of PROXY protocol headers (accept_proxy). The status page and `fulcrum
// status` print from this one list, for services that have any of those keys.
import type { AdmissionStats } from '../engine/stats.js';
import type { LabelledCounter } from './udp-counters.js';

export type AdmissionCounter = LabelledCounter<keyof AdmissionStats>;

export const ADMISSION_COUNTERS: readonly AdmissionCounter[] = [
  { key: 'denied', label: 'denied', meaning: 'refused by allow/deny (TCP: connections closed at accept; UDP: datagrams dropped)' },
  { key: 'overConnections', label: 'over max_connections', meaning: 'connections closed: the client already had client_limits.max_connections open' },
  { key: 'overRate', label: 'over rate', meaning: 'connections closed (TCP) or datagrams dropped (UDP): the client was over its client_limits rate' },
  { key: 'untracked', label: 'untracked', meaning: 'admitted without client_limits: the client table had no room for them' },
  { key: 'proxyAccepted', label: 'PROXY headers', meaning: 'PROXY protocol headers read from clients (accept_proxy)' },
  { key: 'proxyMissing', label: 'missing', meaning: 'connections closed: no PROXY header (the client spoke first, or closed before a byte)' },
  { key: 'proxyMalformed', label: 'malformed', meaning: 'connections closed: a PROXY header the spec does not allow, or cut short' },
  { key: 'proxyTimeout', label: 'timed out', meaning: 'connections closed: no complete PROXY header within accept_proxy_timeout' },
];

/** "admission: 3 denied, 0 over max_connections, ..." (one line of `fulcrum status`). */
export function admissionText(admission: AdmissionStats): string {
  return `admission: ${ADMISSION_COUNTERS.map((c) => `${admission[c.key]} ${c.label}`).join(', ')}`;
}
