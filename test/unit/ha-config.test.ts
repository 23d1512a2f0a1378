// The `ha:` config block: every malformed fixture gives exactly the expected
// `file:line:column: message` lines; the good ones load with their defaults.
import t from 'tap';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/configs/', import.meta.url));

const BAD: Record<string, string[]> = {
  'ha-bad-keys.yaml': [
    '7:3: missing required key "interface" in ha',
    '7:9: ha.vrid: expected an integer from 1 to 255, got 0',
    '8:13: ha.priority: expected an integer from 1 to 254, got 255',
    '9:16: ha.virtual_ips must not be empty',
    '10:3: unknown key "advert_int" in ha; expected one of: interface, vrid, priority, virtual_ips, advert_interval, preempt, preempt_delay, unicast_peers, source_address, notify, garp_repeat, garp_delay, garp_refresh, track',
    '11:12: ha.preempt: expected true or false, got "yes"',
    '13:13: ha.track.weight: expected an integer from 0 to 253, got -1',
  ],
  'ha-bad-values.yaml': [
    '10:17: bad virtual IP "10.200.0.300/24": expected an IPv4 address with an optional /prefix, e.g. 10.200.0.100/24 (IPv6 is not supported yet)',
    '10:34: bad virtual IP "10.200.0.100/33": prefix length "33": expected 1 to 32',
    '10:65: duplicate virtual IP 10.200.0.101 (also at line 10)',
    '10:82: bad virtual IP "fe80::1": expected an IPv4 address with an optional /prefix, e.g. 10.200.0.100/24 (IPv6 is not supported yet)',
    '11:20: ha.advert_interval "15ms": expected a multiple of 10ms from 10ms to 40950ms (VRRPv3 counts centiseconds)',
    '12:18: ha.preempt_delay "2h" is too long: expected at most 1h',
    '13:31: duplicate unicast peer 10.200.0.3',
    "13:43: unicast peer 10.200.0.101 is one of the virtual IPs; expected the peer's own address",
    '13:57: bad unicast peer "peer2": expected an IPv4 address such as 10.200.0.3',
    '14:19: bad source_address "eth0": expected an IPv4 address',
    '15:11: notify "on-vrrp-state": expected an absolute path to a program',
    '16:17: bad duration "soon" for ha.garp_refresh: expected a number and a unit (ms, s, m, h, d) such as 500ms, 1.5s or 10m',
    '18:21: tracked service "db" does not exist; expected one of: web',
  ],
  'ha-bad-interval.yaml': ['11:20: ha.advert_interval "41s" is too long: expected at most 40950ms'],
};

for (const [file, expected] of Object.entries(BAD)) {
  t.test(file, async (t) => {
    const error = await loadConfig(join(FIXTURES, file)).then(
      () => undefined,
      (err: unknown) => err,
    );
    t.type(error, ConfigError);
    const lines = (error as ConfigError).issues.map((i) => `${i.line}:${i.column}: ${i.message}`);
    t.same(lines, expected);
    t.ok((error as ConfigError).issues.every((i) => i.file.endsWith(file)), 'every issue names the file');
  });
}

t.test('ha-good-minimal.yaml: the defaults', async (t) => {
  const config = await loadConfig(join(FIXTURES, 'ha-good-minimal.yaml'));
  t.same(config.ha, {
    interface: 'eth0',
    vrid: 51,
    priority: 100,
    virtualIps: [{ address: '10.200.0.100', cidr: '10.200.0.100/24' }],
    advertIntervalMs: 1000,
    preempt: true,
    preemptDelayMs: 0,
    unicastPeers: [],
    sourceAddress: undefined,
    notify: undefined,
    garp: { repeat: 5, delayMs: 5000, refreshMs: 0 },
    track: { services: [], weight: 0 },
  });
});

t.test('ha-good-full.yaml: every key', async (t) => {
  const config = await loadConfig(join(FIXTURES, 'ha-good-full.yaml'));
  t.same(config.ha, {
    interface: 'eth0',
    vrid: 51,
    priority: 150,
    virtualIps: [
      { address: '10.200.0.100', cidr: '10.200.0.100/24' },
      { address: '10.200.0.101', cidr: '10.200.0.101/32' },
    ],
    advertIntervalMs: 100,
    preempt: false,
    preemptDelayMs: 5000,
    unicastPeers: ['10.200.0.3'],
    sourceAddress: '10.200.0.2',
    notify: '/usr/local/bin/on-vrrp-state',
    garp: { repeat: 3, delayMs: 0, refreshMs: 60_000 },
    track: { services: ['web'], weight: 60 },
  });
});

t.test('no ha: block, no ha', async (t) => {
  const config = await loadConfig(join(FIXTURES, 'good-minimal.yaml'));
  t.equal(config.ha, undefined);
});
