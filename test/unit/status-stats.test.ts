// The status page's HAProxy-style numbers without sockets: down transitions
// and downtime (DowntimeTracker), session rates from sampled counters
// (SessionRates), and the CSV export's shape and quoting (statusCsv).
import t from 'tap';
import { CSV_COLUMNS, statusCsv } from '../../src/admin/status-csv.js';
import type { BackendView, ServiceView } from '../../src/admin/state-view.js';
import { DowntimeTracker } from '../../src/control/downtime.js';
import { SessionRates } from '../../src/control/session-rates.js';
import type { EngineStats } from '../../src/engine/stats.js';
import { parseCsv } from '../helpers/csv.js';

t.test('DowntimeTracker: transitions into down after another state; downtime includes the current stretch', async (t) => {
  const tracker = new DowntimeTracker();
  tracker.observe('a', 'down', 1_000);
  t.strictSame(tracker.stats('a', 1_500), { downTransitions: 0, downtimeMs: 500 }, 'down from the start (waiting for a first check): downtime, no transition');
  tracker.observe('a', 'up', 2_000);
  tracker.observe('a', 'up', 2_500);
  tracker.observe('a', 'down', 3_000);
  t.strictSame(tracker.stats('a', 3_200), { downTransitions: 1, downtimeMs: 1_200 });
  tracker.observe('a', 'maint', 4_000);
  tracker.observe('a', 'down', 5_000);
  tracker.observe('a', 'drain', 5_100);
  t.strictSame(tracker.stats('a', 9_000), { downTransitions: 2, downtimeMs: 2_100 }, 'maint and drain are not downtime');
  tracker.retain(new Set(['b']));
  t.strictSame(tracker.stats('a'), { downTransitions: 0, downtimeMs: 0 }, 'a removed backend is forgotten');
});

t.test('SessionRates: accepted growth per second between two samples, the highest kept; a counter that went back restarts', async (t) => {
  let accepted = 0;
  let stopped = false;
  const stats = (): EngineStats | undefined => stopped ? undefined : ({
    services: [{ name: 's', accepted, backends: [{ address: '127.0.0.1:1', accepted }] }],
  } as unknown as EngineStats);
  const rates = new SessionRates(stats, 60_000);
  t.teardown(() => rates.stop());
  rates.sample(10_000);
  accepted = 50;
  rates.sample(11_000);
  t.strictSame(rates.service('s'), { rate: 50, max: 50 });
  accepted = 60;
  rates.sample(13_000);
  t.strictSame(rates.backend('s', '127.0.0.1:1'), { rate: 5, max: 50 }, 'over two seconds; the max stays');
  accepted = 3;
  rates.sample(14_000);
  t.strictSame(rates.service('s'), { rate: 0, max: 50 }, 'a reused slot counts from its new owner on');
  stopped = true;
  rates.sample(15_000);
  t.strictSame(rates.service('s'), { rate: 0, max: 50 }, 'a stopped engine is not read');
  t.strictSame(rates.service('gone'), { rate: 0, max: 0 });
});

t.test('statusCsv: a "# " header, a service line then its backends, every line as wide, RFC 4180 quoting', async (t) => {
  const backend = {
    address: '[::1]:5432', state: 'drain', health: 'up', admin: 'drain', weight: 3, backup: true, since: 1_000,
    peak: 7, maxConnections: 0, sessionRate: 2.4, sessionRateMax: 9.6, downTransitions: 2, downtimeMs: 65_400,
    check: { type: 'postgres', rise: 0, fall: 0, role: 'replica', ejections: 0, history: [] },
    accepted: 11, active: 1, failed: 0, bytesIn: 10, bytesOut: 20,
  } as unknown as BackendView;
  const service = {
    name: 'pg', listen: '127.0.0.1:6432, odd', balance: 'leastconn', backendsUp: 0, sessionRate: 0, sessionRateMax: 9.6, queueCurrent: 4,
    accepted: 11, active: 1, failed: 2, bytesIn: 10, bytesOut: 20, queued: 3, refused: 1, queueTimeouts: 1, backends: [backend],
  } as unknown as ServiceView;
  const text = statusCsv([service], 61_000);
  t.ok(text.endsWith('\n'));
  const rows = parseCsv(text);
  t.equal(rows[0]!.join(','), `# ${CSV_COLUMNS.map((c) => c.name).join(',')}`);
  t.ok(rows.every((r) => r.length === CSV_COLUMNS.length), 'every line as wide as the header');
  t.ok(text.split('\n')[1]!.includes(',"127.0.0.1:6432, odd",'), 'a field with a comma is quoted');
  const names = CSV_COLUMNS.map((c) => c.name);
  const of = (row: string[]) => Object.fromEntries(names.map((n, i) => [n, row[i]]));
  t.match(of(rows[1]!), { pxname: 'pg', svname: 'SERVICE', type: 'service', listen: '127.0.0.1:6432, odd', status: 'NO_BACKEND', scur: '1', stot: '11', econ: '2', qcur: '4', qtot: '3', qrefused: '1', qtimeouts: '1', rate_max: '10', smax: '', bck: '' });
  t.match(of(rows[2]!), { svname: '[::1]:5432', type: 'backend', listen: '', status: 'DRAIN', admin: 'drain', check: 'postgres', role: 'replica', weight: '3', bck: '1', smax: '7', slim: '', rate: '2', rate_max: '10', chkdown: '2', downtime: '65', lastchg: '60', qtot: '' });
  t.ok(CSV_COLUMNS.every((c) => c.meaning.length > 10), 'every column says what it means');
});
