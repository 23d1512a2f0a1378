// GET /api/status.csv: the state the status page shows, as HAProxy's `show
// stat` / `;csv` does it: a header line starting with "# ", then one line per
// service (svname SERVICE) followed by one per backend. Columns keep HAProxy's
// names where the meaning is the same; each is described once in
// CSV_COLUMNS (the README lists them from there). Numbers are plain (no
// units); an empty field means "does not apply" (a service has no weight, a
// backend no queue).
import type { BackendView, ServiceView } from './state-view.js';

type Row = { service: ServiceView; backend: BackendView | undefined; now: number };

interface Column {
  name: string;
  meaning: string;
  value(row: Row): string | number;
}

const seconds = (ms: number): number => Math.round(ms / 1000);
const onBackend = (f: (b: BackendView, row: Row) => string | number) => (row: Row): string | number =>
  row.backend === undefined ? '' : f(row.backend, row);
const onService = (f: (s: ServiceView) => string | number) => (row: Row): string | number =>
  row.backend === undefined ? f(row.service) : '';
const either = (f: (counters: ServiceView | BackendView) => string | number) => (row: Row): string | number =>
  f(row.backend ?? row.service);

export const CSV_COLUMNS: readonly Column[] = [
  { name: 'pxname', meaning: 'service name', value: (r) => r.service.name },
  { name: 'svname', meaning: 'SERVICE for the service line, else the backend address', value: (r) => r.backend?.address ?? 'SERVICE' },
  { name: 'type', meaning: 'service or backend', value: (r) => (r.backend === undefined ? 'service' : 'backend') },
  { name: 'listen', meaning: 'the service listen address (service line)', value: onService((s) => s.listen) },
  { name: 'status', meaning: 'service: OPEN or NO_BACKEND (none up); backend: UP, DOWN, DRAIN or MAINT (what the engine runs)', value: (r) =>
    r.backend === undefined ? (r.service.backendsUp > 0 ? 'OPEN' : 'NO_BACKEND') : r.backend.state.toUpperCase() },
  { name: 'health', meaning: 'the health checks\' verdict: up or down', value: onBackend((b) => b.health) },
  { name: 'admin', meaning: 'the operator\'s state: enabled, drain or maint', value: onBackend((b) => b.admin) },
  { name: 'check', meaning: 'the active check\'s type (none without one)', value: onBackend((b) => b.check.type) },
  { name: 'role', meaning: 'the role the check detected: primary or replica (empty when the check tells none)', value: onBackend((b) => b.check.role ?? '') },
  { name: 'weight', meaning: 'the weight in effect', value: onBackend((b) => b.weight) },
  { name: 'bck', meaning: '1 for a backup backend, else 0', value: onBackend((b) => (b.backup ? 1 : 0)) },
  { name: 'scur', meaning: 'connections open now (udp: flows)', value: either((c) => c.active) },
  { name: 'smax', meaning: 'backend: the most connections open at once since it was added (exact)', value: onBackend((b) => b.peak) },
  { name: 'slim', meaning: 'backend: its max_connections (empty: no limit)', value: onBackend((b) => (b.maxConnections > 0 ? b.maxConnections : '')) },
  { name: 'stot', meaning: 'connections accepted (service) or established (backend) since start; udp: flows', value: either((c) => c.accepted) },
  { name: 'rate', meaning: 'new connections per second over the last second', value: either((c) => Math.round(c.sessionRate)) },
  { name: 'rate_max', meaning: 'the highest rate since start (sampled each second)', value: either((c) => Math.round(c.sessionRateMax)) },
  { name: 'econ', meaning: 'service: clients closed because no backend could be reached; backend: failed connect attempts', value: either((c) => c.failed) },
  { name: 'qcur', meaning: 'service: clients waiting in the queue now', value: onService((s) => s.queueCurrent) },
  { name: 'qtot', meaning: 'service: clients that waited in the queue (the queue is the service\'s, not a backend\'s)', value: onService((s) => s.queued) },
  { name: 'qrefused', meaning: 'service: clients refused, every backend full and the queue too or its timeout passed', value: onService((s) => s.refused) },
  { name: 'qtimeouts', meaning: 'service: the part of qrefused that waited the whole queue timeout', value: onService((s) => s.queueTimeouts) },
  { name: 'bin', meaning: 'bytes client to backend', value: either((c) => c.bytesIn) },
  { name: 'bout', meaning: 'bytes backend to client', value: either((c) => c.bytesOut) },
  { name: 'chkdown', meaning: 'backend: times it went down (health checks, passive ejection)', value: onBackend((b) => b.downTransitions) },
  { name: 'downtime', meaning: 'backend: seconds spent down since it was added', value: onBackend((b) => seconds(b.downtimeMs)) },
  { name: 'lastchg', meaning: 'backend: seconds since its status last changed', value: onBackend((b, r) => seconds(Math.max(0, r.now - b.since))) },
];

/** One CSV field: quoted when it holds a comma, a quote or a line break (RFC 4180). */
function field(value: string | number): string {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** The CSV document of `services` (lines end with \n, as HAProxy's). */
export function statusCsv(services: readonly ServiceView[], now = Date.now()): string {
  const lines = [`# ${CSV_COLUMNS.map((c) => c.name).join(',')}`];
  for (const service of services) {
    for (const backend of [undefined, ...service.backends]) {
      const row: Row = { service, backend, now };
      lines.push(CSV_COLUMNS.map((c) => field(c.value(row))).join(','));
    }
  }
  return `${lines.join('\n')}\n`;
}
