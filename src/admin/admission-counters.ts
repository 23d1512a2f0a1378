// A service's admission counters as operators read them: who was turned away
// before any backend was touched (allow/deny, client_limits) and what became
// of PROXY protocol headers (accept_proxy). The status page and `fulcrum
// status` print from this one list, for services that have any of those keys.
import type { AdmissionField } from '../engine/counter-reader.js';
import { COUNTER_FIELDS } from '../engine/native.js';
import type { AdmissionStats } from '../engine/stats.js';
import type { LabelledCounter } from './udp-counters.js';

export type AdmissionCounter = LabelledCounter<AdmissionField>;

/** Every admission counter's words (a Record over the layout's fields: a new counter does not compile until it has them). */
const WORDS: Readonly<Record<AdmissionField, Omit<AdmissionCounter, 'key'>>> = {
  denied: { label: 'denied', meaning: 'refused by allow/deny (TCP: connections closed at accept; UDP: datagrams dropped)' },
  overConnections: { label: 'over max_connections', meaning: 'connections closed: the client already had client_limits.max_connections open' },
  overRate: { label: 'over rate', meaning: 'connections closed (TCP) or datagrams dropped (UDP): the client was over its client_limits rate' },
  untracked: { label: 'untracked', meaning: 'admitted without client_limits: the client table had no room for them' },
  proxyAccepted: { label: 'PROXY headers', meaning: 'PROXY protocol headers read from clients (accept_proxy)' },
  proxyMissing: { label: 'missing', meaning: 'connections closed: no PROXY header (the client spoke first, or closed before a byte)' },
  proxyMalformed: { label: 'malformed', meaning: 'connections closed: a PROXY header the spec does not allow, or cut short' },
  proxyTimeout: { label: 'timed out', meaning: 'connections closed: no complete PROXY header within accept_proxy_timeout' },
};

/** In the layout's order, as both views print them. */
export const ADMISSION_COUNTERS: readonly AdmissionCounter[] = COUNTER_FIELDS.admission.map((key) => ({ key, ...WORDS[key] }));

/** "admission: 3 denied, 0 over max_connections, ..." (one line of `fulcrum status`). */
export function admissionText(admission: AdmissionStats): string {
  return `admission: ${ADMISSION_COUNTERS.map((c) => `${admission[c.key]} ${c.label}`).join(', ')}`;
}
