// The text of `fulcrum status` (formatStatus) on hand-built views, byte for
// byte: a TCP-only table with its peak, rate and queue, and
// a protocol: udp service gets its flow-table line, datagram columns and a
// note on units; each service says how its connections ended (the connection
// log's termination counts). (test/process/udp-status.test.ts: the real command.)
import t from 'tap';
import type { BackendView, ServiceView, StatusView } from '../../src/admin/state-view.js';
import { formatStatus } from '../../src/commands/status.js';

const NOW = 1_800_000_000_000;

function backend(address: string, extra: Partial<BackendView> = {}): BackendView {
  return {
    address, state: 'up', health: 'up', admin: 'enabled', weight: 1, backup: false, since: NOW - 65_000,
    check: { type: 'none', rise: 0, fall: 0, ejections: 0, history: [] },
    accepted: 7, active: 2, failed: 1, bytesIn: 2048, bytesOut: 1000,
    peak: 3, maxConnections: 0, sessionRate: 1.4, sessionRateMax: 5, downTransitions: 0, downtimeMs: 0, ...extra,
  };
}

const tcpService: ServiceView = {
  name: 'web', listen: '127.0.0.1:8080', balance: 'roundrobin', accepted: 9, active: 2, failed: 1, bytesIn: 3072, bytesOut: 1500,
  queued: 4, refused: 1, queueTimeouts: 1, backendsUp: 1, ended: { backend_reset: 1, client_closed: 6 },
  queueCurrent: 2, sessionRate: 12.6, sessionRateMax: 40,
  backends: [
    backend('127.0.0.1:9001', { maxConnections: 50 }),
    backend('127.0.0.1:9002', {
      state: 'drain', admin: 'drain', backup: true, accepted: 2, active: 0, failed: 0, bytesIn: 1024, bytesOut: 500,
      check: { type: 'tcp', rise: 2, fall: 3, ejections: 0, history: [{ at: NOW - 1000, ok: true, latencyMs: 0.42 }] },
    }),
  ],
};

const view = (services: ServiceView[]): StatusView => ({
  version: '0.1.0', pid: 4242, config: '/etc/fulcrum.yaml', generation: 2, startedAt: NOW - 3_723_000, now: NOW, workers: 2, lastReload: null, ha: null, services,
});

t.test('formatStatus: a TCP-only table: peak against max_connections, session rate, the service queue and how connections ended', async (t) => {
  t.equal(formatStatus(view([tcpService])), [
    'fulcrum 0.1.0, pid 4242, up 1h 2m 3s, 2 workers',
    'config /etc/fulcrum.yaml (generation 2)',
    '',
    'SERVICE  BACKEND                    STATE   SINCE  HEALTH  ADMIN    WEIGHT  ACTIVE  PEAK  CONN/S  TOTAL  FAILED  IN       OUT      LAST CHECK',
    'web      127.0.0.1:8080 roundrobin  1/2 up                                  2             13      9      1       3.0 KiB  1.5 KiB',
    '         queue: 2 waiting now, 4 waited, 1 refused (1 after the queue timeout)',
    '         ended: 6 client_closed, 1 backend_reset',
    '         127.0.0.1:9001             up      1m 5s  up      enabled  1       2       3/50  1       7      1       2.0 KiB  1000 B   -',
    '         127.0.0.1:9002 (backup)    drain   1m 5s  up      drain    1       0       3/-   1       2      0       1.0 KiB  500 B    tcp ok 0.4ms',
    '',
  ].join('\n'));
});

t.test('formatStatus: a udp service gets its flow-table line, datagram columns and a note on units; TCP rows show -', async (t) => {
  const game: ServiceView = {
    name: 'game', listen: '127.0.0.1:5300', balance: 'maglev', accepted: 12, active: 4, failed: 2, bytesIn: 6400, bytesOut: 3200,
    queued: 0, refused: 0, queueTimeouts: 0, backendsUp: 2, ended: {},
    queueCurrent: 0, sessionRate: 3, sessionRateMax: 3,
    udp: { datagramsIn: 100, datagramsOut: 50, datagramsDropped: 3, flowsCreated: 12, flowsActive: 4, flowsExpired: 5, flowsEvicted: 1, flowsCompleted: 0, flowsMoved: 6, flowsDropped: 2 },
    backends: [
      backend('127.0.0.1:5301', { accepted: 10, active: 3, failed: 1, bytesIn: 4800, bytesOut: 2400, udp: { datagramsIn: 75, datagramsOut: 38 } }),
      backend('127.0.0.1:5302', { accepted: 8, active: 1, failed: 0, bytesIn: 1600, bytesOut: 800, udp: { datagramsIn: 25, datagramsOut: 12 } }),
    ],
  };
  t.equal(formatStatus(view([tcpService, game])), [
    'fulcrum 0.1.0, pid 4242, up 1h 2m 3s, 2 workers',
    'config /etc/fulcrum.yaml (generation 2)',
    '',
    'SERVICE  BACKEND                    STATE   SINCE  HEALTH  ADMIN    WEIGHT  ACTIVE  PEAK  CONN/S  TOTAL  FAILED  IN       OUT      DGRAMS IN  DGRAMS OUT  LAST CHECK',
    'web      127.0.0.1:8080 roundrobin  1/2 up                                  2             13      9      1       3.0 KiB  1.5 KiB  -          -',
    '         queue: 2 waiting now, 4 waited, 1 refused (1 after the queue timeout)',
    '         ended: 6 client_closed, 1 backend_reset',
    '         127.0.0.1:9001             up      1m 5s  up      enabled  1       2       3/50  1       7      1       2.0 KiB  1000 B   -          -           -',
    '         127.0.0.1:9002 (backup)    drain   1m 5s  up      drain    1       0       3/-   1       2      0       1.0 KiB  500 B    -          -           tcp ok 0.4ms',
    'game     127.0.0.1:5300 maglev      2/2 up                                  4             3       12     2       6.3 KiB  3.1 KiB  100        50',
    '         flows: 4 active, 12 created, 5 expired, 1 evicted, 0 completed, 6 moved, 2 dropped; datagrams dropped: 3',
    '         ended: none yet',
    '         127.0.0.1:5301             up      1m 5s  up      enabled  1       3       3/-   1       10     1       4.7 KiB  2.3 KiB  75         38          -',
    '         127.0.0.1:5302             up      1m 5s  up      enabled  1       1       3/-   1       8      0       1.6 KiB  800 B    25         12          -',
    '',
    'udp services: ACTIVE and TOTAL count flows; FAILED counts new flows dropped (service row) or ICMP unreachable answers and send errors (backend row)',
    '',
  ].join('\n'));
});
