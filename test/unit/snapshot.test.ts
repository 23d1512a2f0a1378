// snapshot(config, slots), the native snapshot of a validated config: every
// key of a tcp and a udp service, with its default and with a value, lands
// in the field the addon reads (native/addon/snapshot_reader.cc), and the
// slots are the ones the caller gave. Configs go through parseConfig, as
// `fulcrum run` builds them. No addon, no sockets.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import type { NativeServiceSpec } from '../../src/engine/native.js';
import { snapshot, type SnapshotSlots } from '../../src/engine/snapshot.js';

/** Services numbered from 10 and backends from 100, in the order they are asked for. */
function countingSlots(): SnapshotSlots & { asked: string[] } {
  const asked: string[] = [];
  const services = new Map<string, number>();
  const backends = new Map<string, number>();
  return {
    asked,
    service(name) {
      asked.push(name);
      if (!services.has(name)) services.set(name, 10 + services.size);
      return services.get(name)!;
    },
    backend(service, address) {
      asked.push(`${service}/${address}`);
      const key = `${service}/${address}`;
      if (!backends.has(key)) backends.set(key, 100 + backends.size);
      return backends.get(key)!;
    },
  };
}

/** What a service with no optional key becomes (TCP, one backend), before the test's changes. */
function plainService(over: Partial<NativeServiceSpec>): NativeServiceSpec {
  return {
    slot: 10,
    name: 'svc',
    protocol: 'tcp',
    freebind: false,
    ipv6Only: false,
    maxFlows: 16384,
    udpResponses: 0,
    datapath: 'auto',
    natPortFirst: 20000,
    natPortCount: 10000,
    listenHost: '127.0.0.1',
    listenPort: 7000,
    balance: 'roundrobin',
    hashKey: 'five_tuple',
    maglevTableSize: 65537,
    connectTimeoutMs: 2000,
    idleTimeoutMs: 0,
    tcpKeepalive: { idleMs: 60_000, intervalMs: 15_000, count: 8 },
    retries: 2,
    queueSize: 1024,
    queueTimeoutMs: 2000,
    sticky: null,
    acceptProxy: null,
    allow: [],
    deny: [],
    clientLimits: null,
    transparent: false,
    sync: false,
    pgCancel: false,
    relay: 'auto',
    backends: [
      { slot: 100, host: '127.0.0.1', port: 7001, weight: 1, backup: false, maxConnections: 0, slowStartMs: 0, sendProxy: 'none' },
    ],
    ...over,
  };
}

t.test('a tcp service with only the required keys carries every default', async (t) => {
  const config = parseConfig('services:\n  - name: svc\n    listen: 127.0.0.1:7000\n    backends: [{address: 127.0.0.1:7001}]\n', 'plain.yaml');
  const slots = countingSlots();
  t.strictSame(snapshot(config, slots), { services: [plainService({})] });
  t.strictSame(slots.asked, ['svc', 'svc/127.0.0.1:7001'], 'the service, then its backends');
});

t.test('every key of a tcp service reaches its field', async (t) => {
  const config = parseConfig(
    [
      'services:',
      '  - name: svc',
      '    listen: "[::1]:7000"',
      '    balance: maglev',
      '    hash_key: source',
      '    maglev_table_size: 1009',
      '    timeouts: {connect: 1500ms, idle: 2m}',
      '    tcp_keepalive: {idle: 1500ms, interval: 2s}',
      '    retries: 0',
      '    slow_start: 5s',
      '    queue: {size: 10, timeout: 1s}',
      '    sticky: {key: source, timeout: 1m, size: 1000}',
      '    drain_timeout: 9s',
      '    accept_proxy: true',
      '    accept_proxy_from: [10.0.0.0/8, "2001:db8::1"]',
      '    accept_proxy_timeout: 1500ms',
      '    send_proxy: v1',
      '    allow: [192.0.2.0/24, 10.0.0.7]',
      '    deny: [192.0.2.128/25]',
      '    client_limits: {max_connections: 20, connection_rate: 5, connection_burst: 9, table_size: 1024}',
      '    backends:',
      '      - address: "[::1]:7001"',
      '        weight: 3',
      '        max_connections: 50',
      '        slow_start: 0',
      '        send_proxy: v2',
      '      - address: "[::1]:7002"',
      '        backup: true',
    ].join('\n'),
    'full.yaml',
  );
  t.strictSame(snapshot(config, countingSlots()).services, [
    plainService({
      listenHost: '::1',
      balance: 'maglev',
      hashKey: 'source',
      maglevTableSize: 1009,
      connectTimeoutMs: 1500,
      idleTimeoutMs: 120_000,
      tcpKeepalive: { idleMs: 1500, intervalMs: 2000, count: 8 },
      retries: 0,
      queueSize: 10,
      queueTimeoutMs: 1000,
      sticky: { size: 1000, timeoutMs: 60_000 },
      acceptProxy: { from: ['10.0.0.0/8', '2001:db8::1/128'], timeoutMs: 1500 },
      allow: ['192.0.2.0/24', '10.0.0.7/32'],
      deny: ['192.0.2.128/25'],
      clientLimits: { maxConnections: 20, rate: 5, burst: 9, tableSize: 1024 },
      backends: [
        { slot: 100, host: '::1', port: 7001, weight: 3, backup: false, maxConnections: 50, slowStartMs: 0, sendProxy: 'v2' },
        // The service's slow_start and send_proxy where the backend has none.
        { slot: 101, host: '::1', port: 7002, weight: 1, backup: true, maxConnections: 0, slowStartMs: 5000, sendProxy: 'v1' },
      ],
    }),
  ]);
});

t.test('defaults that come from other keys: the queue timeout, the burst, every peer sending a header', async (t) => {
  const config = parseConfig(
    [
      'services:',
      '  - name: svc',
      '    listen: 127.0.0.1:7000',
      '    timeouts: {connect: 3s}',
      '    accept_proxy: true',
      '    source: client',
      '    client_limits: {connection_rate: 7}',
      '    backends: [{address: 127.0.0.1:7001}]',
    ].join('\n'),
    'derived.yaml',
  );
  const [service] = snapshot(config, countingSlots()).services;
  t.equal(service!.queueTimeoutMs, 3000, 'queue.timeout: timeouts.connect');
  t.strictSame(service!.clientLimits, { maxConnections: 0, rate: 7, burst: 7, tableSize: 65536 }, 'burst: the rate; no max_connections: 0');
  t.strictSame(service!.acceptProxy, { from: null, timeoutMs: 3000 }, 'every peer must send a header, within 3s');
  t.equal(service!.transparent, true, 'source: client');
});

t.test('tcp_keepalive: off or false carries null', async (t) => {
  for (const off of ['off', 'false']) {
    const config = parseConfig(`services:\n  - name: svc\n    listen: 127.0.0.1:7000\n    tcp_keepalive: ${off}\n    backends: [{address: 127.0.0.1:7001}]\n`, 'off.yaml');
    t.equal(snapshot(config, countingSlots()).services[0]!.tcpKeepalive, null, `tcp_keepalive: ${off}`);
  }
});

t.test('every key of a udp service reaches its field', async (t) => {
  const plain = parseConfig('services:\n  - name: svc\n    protocol: udp\n    listen: 127.0.0.1:7000\n    backends: [{address: 127.0.0.1:7001}]\n', 'udp.yaml');
  t.strictSame(snapshot(plain, countingSlots()).services, [plainService({ protocol: 'udp', balance: 'maglev', idleTimeoutMs: 30_000, tcpKeepalive: null })], 'udp defaults: maglev, 30s idle');
  const full = parseConfig(
    [
      'services:',
      '  - name: svc',
      '    protocol: udp',
      '    listen: 127.0.0.1:7000',
      '    balance: random',
      '    timeouts: {idle: 5s}',
      '    max_flows: 64',
      '    datapath: user',
      '    udp: {responses: 1, nat_ports: 40000-40999}',
      '    allow: ["::ffff:10.0.0.0/104"]',
      '    client_limits: {datagram_rate: 1000, datagram_burst: 50, table_size: 16}',
      '    backends: [{address: 127.0.0.1:7001, weight: 0}]',
    ].join('\n'),
    'udp-full.yaml',
  );
  t.strictSame(snapshot(full, countingSlots()).services, [
    plainService({
      protocol: 'udp',
      balance: 'random',
      idleTimeoutMs: 5000,
      tcpKeepalive: null,
      maxFlows: 64,
      udpResponses: 1,
      datapath: 'user',
      natPortFirst: 40000,
      natPortCount: 1000,
      allow: ['::ffff:10.0.0.0/104'],
      clientLimits: { maxConnections: 0, rate: 1000, burst: 50, tableSize: 16 },
      backends: [{ slot: 100, host: '127.0.0.1', port: 7001, weight: 0, backup: false, maxConnections: 0, slowStartMs: 0, sendProxy: 'none' }],
    }),
  ]);
});

t.test('listeners on a VRRP or announced VIP bind freely; sync: shares every service', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-snapshot-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'sync.key'), 'a-shared-secret-of-32-characters\n');
  const text = [
    'ha: {interface: lo, vrid: 7, priority: 100, virtual_ips: [10.200.0.100/24]}',
    'announce: {local_address: 10.201.0.1, local_as: 65001, neighbors: [{address: 10.201.0.254, as: 65000}], vips: [10.203.0.100]}',
    'sync: {listen: "10.201.0.1:7480", peers: ["10.201.0.2:7480"], key_file: sync.key}',
    'services:',
    '  - name: vrrp',
    '    listen: 10.200.0.100:5432',
    '    backends: [{address: 127.0.0.1:7001}]',
    '  - name: ecmp',
    '    listen: 10.203.0.100:5432',
    '    backends: [{address: 127.0.0.1:7001}]',
    '  - name: local',
    '    listen: 127.0.0.1:5432',
    '    backends: [{address: 127.0.0.1:7001}]',
  ].join('\n');
  const services = snapshot(parseConfig(text, join(dir, 'vip.yaml')), countingSlots()).services;
  t.strictSame(services.map((s) => [s.name, s.slot, s.freebind, s.sync]), [
    ['vrrp', 10, true, true],
    ['ecmp', 11, true, true],
    ['local', 12, false, true],
  ]);
  t.strictSame(services.map((s) => s.backends[0]!.slot), [100, 101, 102], 'one backend slot per service and address');
});

t.test('postgres_cancel: auto broadcasts for services checked as PostgreSQL servers', async (t) => {
  const pgCancel = (keys: string[]): boolean[] => {
    const text = ['services:', '  - name: svc', '    listen: 127.0.0.1:7000', ...keys.map((key) => `    ${key}`)].join('\n');
    return snapshot(parseConfig(text, 'pg.yaml'), countingSlots()).services.map((service) => service.pgCancel);
  };
  const two = 'backends: [{address: 127.0.0.1:7001}, {address: 127.0.0.1:7002}]';
  t.strictSame(pgCancel([two]), [false], 'auto without a health check: off');
  t.strictSame(pgCancel(['health_check: {type: postgres, user: app}', two]), [true], 'auto with a postgres check: on');
  t.strictSame(pgCancel(['health_check: {type: tcp}', two]), [false], 'auto with another check: off');
  t.strictSame(pgCancel(['postgres_cancel: off', 'health_check: {type: postgres, user: app}', two]), [false], 'off wins over the check');
  t.strictSame(pgCancel(['postgres_cancel: broadcast', two]), [true], 'broadcast without a check');
  t.strictSame(
    pgCancel(['backends: [{address: 127.0.0.1:7001, health_check: {type: postgres, user: app}}, {address: 127.0.0.1:7002}]']),
    [true],
    "auto with a backend's own postgres check: on",
  );
});

t.test('postgres_cancel is refused on a udp service', async (t) => {
  const text = 'services:\n  - name: svc\n    protocol: udp\n    listen: 127.0.0.1:7000\n    postgres_cancel: broadcast\n    backends: [{address: 127.0.0.1:7001}]\n';
  t.throws(() => parseConfig(text, 'udp-pg.yaml'), /5:5: postgres_cancel does not apply to protocol: udp/);
});

t.test('ipv6_only reaches an IPv6 listener only; [::] is dual-stack by default', async (t) => {
  const text = [
    'services:',
    '  - name: dual',
    '    listen: "[::]:5432"',
    '    backends: [{address: 127.0.0.1:7001}]',
    '  - name: v6only',
    '    listen: "[::]:5433"',
    '    ipv6_only: true',
    '    backends: [{address: 127.0.0.1:7001}]',
  ].join('\n');
  const services = snapshot(parseConfig(text, 'v6.yaml'), countingSlots()).services;
  t.strictSame(services.map((s) => [s.name, s.listenHost, s.ipv6Only]), [
    ['dual', '::', false],
    ['v6only', '::', true],
  ]);
});
