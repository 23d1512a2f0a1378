// The config side of DNS discovery: which backend entries name DNS records
// (`address: NAME:PORT`, `srv: NAME`), what they are built into, and the
// `resolvers:` section's checks. Nothing is resolved at load.
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { parseBackendTarget } from '../../src/config/address.js';

const config = (backends: string, resolvers = '') =>
  `${resolvers}services:\n  - name: s\n    listen: 127.0.0.1:7000\n    backends:\n${backends}`;

const issues = (text: string): string[] => {
  try {
    parseConfig(text, 'x.yaml');
  } catch (err) {
    return (err as { issues: Array<{ line: number; column: number; message: string }> }).issues.map((i) => `${i.line}:${i.column}: ${i.message}`);
  }
  return [];
};

t.test('parseBackendTarget: IP literals stay endpoints, host names become names', async (t) => {
  t.match(parseBackendTarget('10.0.0.1:5432'), { ok: true, endpoint: { host: '10.0.0.1', port: 5432 } });
  t.match(parseBackendTarget('localhost:80'), { ok: true, endpoint: { host: '127.0.0.1' } });
  t.same(parseBackendTarget('DB.Internal.:5432'), { ok: true, name: 'db.internal', port: 5432 });
  t.same(parseBackendTarget('db:1'), { ok: true, name: 'db', port: 1 });
  t.match(parseBackendTarget('db.internal:0'), { ok: false, message: /port 0 out of range/ });
  t.match(parseBackendTarget('db.internal:x'), { ok: false, message: /is not a number/ });
  t.match(parseBackendTarget('10.0.0.300:5432'), { ok: false, message: /not an IP address, localhost or a host name/ });
  t.match(parseBackendTarget('-bad.example:5432'), { ok: false });
});

t.test('named entries are discovery entries with their settings; IP entries stay backends', async (t) => {
  const c = parseConfig(
    config('      - address: 127.0.0.1:9000\n      - address: db.fulcrum.test:5432\n        weight: 3\n        backup: true\n      - srv: _pg._tcp.fulcrum.test\n        send_proxy: v2\n      - address: db2.fulcrum.test:5432\n'),
    'x.yaml',
  );
  const s = c.services[0]!;
  t.same(s.backends.map((b) => b.address.text), ['127.0.0.1:9000']);
  t.same(
    s.discovery!.map((d) => [d.kind, d.name, d.port, d.label, d.template.weight, d.template.backup, d.template.sendProxy, d.weightWritten]),
    [
      ['host', 'db.fulcrum.test', 5432, 'db.fulcrum.test:5432', 3, true, 'none', true],
      ['srv', '_pg._tcp.fulcrum.test', 0, 'srv:_pg._tcp.fulcrum.test', 1, false, 'v2', false],
      ['host', 'db2.fulcrum.test', 5432, 'db2.fulcrum.test:5432', 1, false, 'none', false],
    ],
  );
  t.same(c.resolvers, { servers: undefined, timeoutMs: 2000, tries: 2, minTtlMs: 1000, maxTtlMs: 300_000, retryMs: 5000 }, 'defaults: the system servers');
});

t.test('entry and resolvers errors name the key', async (t) => {
  t.same(issues(config('      - address: 127.0.0.1:1\n        srv: _a._tcp.x\n')), ['5:9: a backend has an address or an srv record name, not both']);
  t.same(issues(config('      - weight: 2\n')), ['5:9: a backend needs an address (host:port) or an srv record name']);
  t.match(issues(config('      - srv: postgres.example\n')), [/^5:14: srv: .*pattern|^5:14: .*srv/]);
  t.same(issues(config('      - address: db.x:5432\n      - address: DB.x:5432\n')), ['6:18: duplicate backend db.x:5432 in service "s" (also at line 5)']);
  t.same(issues(config('      - address: 127.0.0.1:1\n', 'resolvers:\n  min_ttl: 10s\n  max_ttl: 5s\n')), ['3:12: resolvers.max_ttl 5s is below min_ttl 10s']);
  t.same(issues(config('      - address: 127.0.0.1:1\n', 'resolvers:\n  servers: [dns.example]\n')), ['2:13: bad DNS server "dns.example": expected an IP address, IP:port or [v6]:port']);
  t.same(issues(config('      - address: 127.0.0.1:1\n', 'resolvers:\n  servers: ["10.0.0.1", "10.0.0.2:5353", "[::1]:53", "::1"]\n')), []);
});
