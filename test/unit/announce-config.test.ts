// The `announce:` and `sync:` config blocks: defaults, every bad value with
// its file:line:column, and the BIRD config written from them (checked by
// `bird -p` when bird is installed).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { birdConfig, vipProtocol } from '../../src/announce/bird-config.js';
import { parseProtocols } from '../../src/announce/birdc.js';
import { parseConfig } from '../../src/config/load.js';
import { diffConfigs } from '../../src/control/config-diff.js';
import { ConfigError } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'fulannounce-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const KEY = join(dir, 'sync.key');
writeFileSync(KEY, '  0123456789abcdef0123456789abcdef  \n');
const SHORT_KEY = join(dir, 'short.key');
writeFileSync(SHORT_KEY, 'short\n');

const SERVICES = `services:
  - name: web
    listen: 10.203.0.100:80
    backends:
      - address: 10.0.0.21:80
  - name: dns
    protocol: udp
    listen: 10.203.0.101:53
    backends:
      - address: 10.0.0.21:53
`;

function parse(extra: string) {
  return parseConfig(`${SERVICES}${extra}`, join(dir, 'node.yaml'));
}

function issues(extra: string): string[] {
  try {
    parse(extra);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.line}:${i.column}: ${i.message}`);
    throw err;
  }
  return [];
}

const MINIMAL = `announce:
  local_address: 10.201.0.1
  local_as: 65001
  neighbors:
    - {address: 10.201.0.254, as: 65000}
  vips: [10.203.0.100, 10.203.0.101]
`;

t.test('announce: the defaults', async (t) => {
  const config = parse(MINIMAL);
  t.same(config.announce, {
    localAddress: '10.201.0.1',
    localAs: 65001,
    routerId: '10.201.0.1',
    neighbors: [{ address: '10.201.0.254', as: 65000 }],
    vips: ['10.203.0.100', '10.203.0.101'],
    interface: 'lo',
    bfd: true,
    bfdIntervalMs: 100,
    bfdMultiplier: 3,
    holdTimeMs: 9000,
    withdrawGraceMs: 1000,
    track: { services: [] },
    bird: { run: true, config: '/run/fulcrum/bird-10.201.0.1.conf', socket: '/run/fulcrum/bird-10.201.0.1.ctl', bird: 'bird', birdc: 'birdc' },
  });
  t.equal(config.sync, undefined, 'no sync without sync:');
});

t.test('announce: bad values', async (t) => {
  t.same(issues(`announce:
  local_address: 10.201.0.300
  local_as: 0
  router_id: me
  neighbors:
    - {address: 10.201.0.254, as: 65000}
    - {address: 10.201.0.254, as: 65000}
    - {address: router, as: 65000}
  vips: [10.203.0.100, 10.203.0.100, 10.203.0.9, "fe80::1"]
  bfd_interval: 5ms
  bfd_multiplier: 1
  hold_time: 1s
  withdraw_grace: 2m
  track: {services: [db]}
  bird: {config: bird.conf, socket: /run/b.ctl, run: maybe}
`), [
    '12:18: bad local_address "10.201.0.300": expected an IPv4 address such as 10.201.0.1',
    '13:13: announce.local_as: expected an integer from 1 to 4294967295, got 0',
    '14:14: bad router_id "me": expected an IPv4 address such as 10.201.0.1',
    '17:17: duplicate neighbor 10.201.0.254',
    '18:17: bad neighbor address "router": expected an IPv4 address such as 10.201.0.1',
    '19:24: duplicate VIP 10.203.0.100',
    '19:38: no service listens on VIP 10.203.0.9 (or on 0.0.0.0); expected a service with listen: 10.203.0.9:PORT',
    '19:50: bad VIP "fe80::1": expected an IPv4 address such as 10.203.0.100 (announced as /32; IPv6 is not supported yet)',
    '20:17: announce.bfd_interval "5ms": expected at least 10ms',
    '21:19: announce.bfd_multiplier: expected an integer from 2 to 16, got 1',
    '22:14: announce.hold_time "1s": expected at least 3000ms',
    '23:19: announce.withdraw_grace "2m" is too long: expected at most 1m',
    '24:22: tracked service "db" does not exist; expected one of: web, dns',
    '25:18: bird.config "bird.conf": expected an absolute path',
    '25:54: announce.bird.run: expected true or false, got "maybe"',
  ]);
  t.match(issues('announce:\n  local_as: 65001\n')[0], /missing required key "local_address" in announce/, 'required keys');
});

t.test('sync: the defaults, and the key read from key_file (trimmed)', async (t) => {
  const config = parse(`sync:\n  listen: 10.201.0.1:7480\n  peers: [10.201.0.2:7480, 10.201.0.3:7480]\n  key_file: sync.key\n`);
  t.equal(config.sync?.listen.text, '10.201.0.1:7480');
  t.same(config.sync?.peers.map((p) => p.text), ['10.201.0.2:7480', '10.201.0.3:7480']);
  t.equal(config.sync?.key.toString(), '0123456789abcdef0123456789abcdef', 'key_file is relative to the config file, whitespace trimmed');
  t.equal(config.sync?.keyFile, KEY);
  t.equal(config.sync?.intervalMs, 100);
  t.equal(config.sync?.maxSkewMs, 10_000);
});

t.test('sync: bad values', async (t) => {
  t.same(issues(`sync:
  listen: "[::1]:7480"
  peers: [10.201.0.2:7480, 10.201.0.2:7481, nowhere]
  key_file: short.key
  interval: 1ms
  max_skew: 1h
`), [
    '12:11: sync address [::1]:7480: expected IPv4:port (IPv6 is not supported yet)',
    '13:28: duplicate peer address 10.201.0.2 (peers are told apart by address)',
    '13:45: bad address "nowhere": expected host:port, e.g. 127.0.0.1:5432',
    `14:13: sync key in ${SHORT_KEY} is 5 bytes; expected at least 16 (e.g. openssl rand -hex 32)`,
    '15:13: sync.interval "1ms": expected at least 10ms',
    '16:13: sync.max_skew "1h" is too long: expected at most 5m',
  ]);
  t.match(issues('sync:\n  listen: 10.201.0.1:7480\n  peers: [10.201.0.1:7480]\n  key_file: missing.key\n').join('\n'),
    /peer 10.201.0.1:7480 is this node's own sync.listen[\s\S]*cannot read sync key_file .*missing.key: ENOENT/);
});

t.test('a reload that changes announce: or sync: reports them as needing a restart', async (t) => {
  const a = parse(MINIMAL);
  const b = parse(MINIMAL.replace('65001', '65002'));
  t.same(diffConfigs(a, b).needsRestart, ['announce']);
});

t.test('the BIRD config: one disabled static protocol per VIP, BFD and BGP per neighbor', async (t) => {
  const config = parse(`${MINIMAL}  hold_time: 30s\n`).announce!;
  const own = birdConfig(config, true);
  t.match(own, /router id 10\.201\.0\.1;/);
  t.match(own, new RegExp(`protocol static ${vipProtocol('10.203.0.100')} \\{\\n  disabled yes;\\n  ipv4;\\n  route 10\\.203\\.0\\.100/32 blackhole;`));
  t.match(own, /min rx interval 100 ms;[\s\S]*multiplier 3;/);
  t.match(own, /local 10\.201\.0\.1 as 65001;\n  neighbor 10\.201\.0\.254 as 65000;\n  hold time 30;\n  keepalive time 10;/);
  t.match(own, /bfd on;/);
  const include = birdConfig({ ...config, bfd: false }, false);
  t.notMatch(include, /router id|protocol device|bfd/, 'the include file for an existing BIRD has only our protocols, and no BFD when off');
  if (spawnSync('bird', ['--version']).status !== 0) return t.comment('bird not installed: syntax not checked');
  const file = join(dir, 'bird.conf');
  writeFileSync(file, own);
  const check = spawnSync('bird', ['-p', '-c', file], { encoding: 'utf8' });
  t.equal(check.status, 0, `bird -p accepts it ${check.stderr}`);
  writeFileSync(join(dir, 'inc.conf'), include);
  writeFileSync(file, `router id 10.1.1.1;\nprotocol device {}\ninclude "${join(dir, 'inc.conf')}";\n`);
  t.equal(spawnSync('bird', ['-p', '-c', file]).status, 0, 'and the include file inside a user\'s config');
});

t.test('birdc show protocols is parsed', async (t) => {
  const rows = parseProtocols(`Name       Proto      Table      State  Since         Info
fulcrum_device Device ---        up     07:24:41.518
fulcrum_vip_10_203_0_100 Static master4 down   07:24:41.518
fulcrum_bgp_1 BGP        ---        up     2024-05-01 07:24:45  Established
fulcrum_bgp_2 BGP        ---        start  07:24:41.518  Active        Socket: Connection refused`);
  t.same(rows.map((r) => [r.name, r.state, r.info]), [
    ['fulcrum_device', 'up', ''],
    ['fulcrum_vip_10_203_0_100', 'down', ''],
    ['fulcrum_bgp_1', 'up', 'Established'],
    ['fulcrum_bgp_2', 'start', 'Active        Socket: Connection refused'],
  ]);
});
