// Config loading: every malformed fixture gives exactly the expected
// `file:line:column: message` lines; good configs give the expected typed
// object; the shipped configs and the JSON Schema are valid.
//
// To cover a new config feature, add a fixture under test/fixtures/configs/
// and a row to BAD_FIXTURES or GOOD_FIXTURES (every bad-*.yaml needs a row).
import t from 'tap';
import { readdir, readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parseEndpoint } from '../../src/config/address.js';
import { DURATION_EXPECTED, formatDuration, parseDuration } from '../../src/config/duration.js';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { DEFAULT_CONNECTION_LOG } from '../../src/config/connection-log.js';
import { SCHEMA_FILE, configValidator, readConfigSchema } from '../../src/config/schema.js';
import type { BackendConfig, Endpoint, FulcrumConfig, ServiceConfig } from '../../src/config/types.js';
import { isPrime, nearestPrimes } from '../../src/config/validate.js';
import { ConfigError, FulcrumError, UsageError } from '../../src/errors.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURES = join(ROOT, 'test/fixtures/configs');

/** Each malformed fixture and every issue it must produce, as `line:column: message`, in order. */
const BAD_FIXTURES: Record<string, string[]> = {
  'bad-admin-open.yaml': [
    '2:11: admin.listen 0.0.0.0:9090 is not a loopback address: set admin.token or admin.token_file (the API can drain backends and reload the config)',
  ],
  'bad-admin-token.yaml': ['3:10: admin.token must be at least 16 characters (it has 5)'],
  'bad-admin-token-file.yaml': ['4:3: give token or token_file, not both'],
  'bad-admin-missing-token-file.yaml': [
    '3:15: cannot read admin.token_file no-such-admin.token (ENOENT, relative to the config file)',
    '4:3: unknown key "port" in admin; expected one of: listen, token, token_file, max_connections',
  ],
  'bad-unknown-key.yaml': [
    '3:5: missing required key "listen" in service',
    '4:5: unknown key "listn" in service; did you mean "listen"? expected one of: name, protocol, listen, ipv6_only, balance, hash_key, maglev_table_size, backends, timeouts, tcp_keepalive, retries, slow_start, queue, sticky, drain_timeout, health_check, passive, accept_proxy, accept_proxy_from, accept_proxy_timeout, send_proxy, postgres_cancel, relay, source, allow, deny, client_limits, datapath, max_flows, udp',
    '7:9: unknown key "wieght" in backend; did you mean "weight"? expected one of: address, srv, weight, backup, max_connections, slow_start, send_proxy, health_check',
  ],
  'bad-wrong-type.yaml': [
    '2:10: workers: expected "auto" or an integer from 1 to 256, got "many"',
    '8:17: weight: expected an integer from 0 to 256, got "heavy"',
    '9:14: retries: expected an integer from 0 to 16, got a list',
  ],
  'bad-address.yaml': [
    '3:13: bad listen address "127.0.0.1": expected host:port, e.g. 127.0.0.1:6432',
    '5:18: bad address "db1..internal:5432": host "db1..internal" is not an IP address, localhost or a host name',
    '6:18: bad address "::1:5432": an IPv6 address goes in brackets, e.g. [::1]:5432',
    '7:18: bad address "0.0.0.0:5432": a backend needs a specific host, not the wildcard 0.0.0.0',
  ],
  'bad-port-range.yaml': [
    '3:13: port 70000 out of range in listen address "127.0.0.1:70000"; expected 1 to 65535',
    '5:18: port 0 out of range in address "[::1]:0"; expected 1 to 65535',
  ],
  'bad-duplicate-listen.yaml': [
    '6:13: duplicate listen address 127.0.0.1:6432 (also used by service "a" at line 3)',
    '9:13: listen address 0.0.0.0:6432 overlaps 127.0.0.1:6432 of service "a" at line 3 (0.0.0.0:6432 takes port 6432 on every address)',
  ],
  'bad-empty-backends.yaml': [
    '4:15: backends must not be empty',
    '7:5: backends: expected a non-empty list, got an empty value',
  ],
  'bad-duration.yaml': [
    '1:16: bad duration "30 seconds" for drain_timeout: expected a number and a unit (ms, s, m, h, d) such as 500ms, 1.5s or 10m',
    '8:16: timeouts.connect "2h" is too long: expected at most 1h',
    '9:13: timeouts.idle "8d" is too long: expected at most 7d',
    '14:26: bad duration "0.5ms" for timeouts.connect: expected a whole number of milliseconds',
    '14:39: bad duration "-1s" for timeouts.idle: expected a number and a unit (ms, s, m, h, d) such as 500ms, 1.5s or 10m',
    '15:20: bad duration 3600 for drain_timeout: a duration needs a unit: write 3600s for seconds or 3600ms for milliseconds (expected a number and a unit (ms, s, m, h, d) such as 500ms, 1.5s or 10m)',
    '16:28: tcp_keepalive.idle "500ms": expected at least 1s',
    '16:45: tcp_keepalive.interval "10h" is too long: expected at most 9h',
  ],
  'bad-balance.yaml': ['4:14: unknown balance "leastcon"; expected one of: roundrobin, weighted, leastconn, random, source, maglev, least_time, least_bandwidth, first'],
  'bad-protocol.yaml': [
    '8:15: unknown protocol "sctp"; expected one of: tcp, udp',
  ],
  'bad-missing-key.yaml': [
    '2:5: missing required key "listen" in service',
    '4:9: a backend needs an address (host:port) or an srv record name',
  ],
  'bad-duplicate-name.yaml': ['5:11: duplicate service name "pg" (also at line 2)'],
  'bad-yaml-syntax.yaml': ['3:13: YAML syntax error: the string that starts here has no closing "'],
  'bad-weight-range.yaml': [
    '7:17: weight: expected an integer from 0 to 256, got -1',
    '9:17: weight: expected an integer from 0 to 256, got 300',
    '11:17: weight: expected an integer from 0 to 256, got 1.5',
    '12:14: retries: expected an integer from 0 to 16, got 17',
  ],
  'bad-duplicate-yaml-key.yaml': ['5:5: duplicate key "listen" (first at line 3)'],
  'bad-duplicate-backend.yaml': ['6:18: duplicate backend 127.0.0.1:5432 in service "pg" (also at line 5)'],
  'bad-empty.yaml': ['1:1: the config is empty; expected a mapping with at least a "services" list'],
  'bad-top-level.yaml': ['1:1: the top level must be a mapping (workers, drain_timeout, log, services), got a list'],
  'bad-unquoted-star.yaml': [
    '3:13: unknown alias *:6432: no anchor &:6432 before it (to write a value that starts with *, quote it: "*:6432")',
  ],
  'bad-service-name.yaml': ['2:11: name: expected 1 to 64 characters of A-Z a-z 0-9 _ . -, got "my service"'],
  'bad-hash-key.yaml': [
    '5:5: hash_key applies only to balance: maglev (this service has balance: roundrobin)',
    '11:5: maglev_table_size applies only to balance: maglev (this service has balance: leastconn)',
    '17:15: unknown hash_key "destination"; expected one of: five_tuple, source',
  ],
  'bad-maglev-table-size.yaml': [
    '5:24: maglev_table_size 65536 must be a prime; nearest primes are 65521 and 65537',
    '11:24: maglev_table_size: expected an integer from 251 to 4194301, got 101',
    '17:24: maglev_table_size: expected an integer from 251 to 4194301, got 5000000',
  ],
  'bad-maglev-small-table.yaml': ['6:24: maglev_table_size 251 must be larger than the number of backends (252)'],
  'bad-all-backup.yaml': [
    '4:5: every backend of service "pg" is a backup; at least one must not be',
    '13:17: backup: expected true or false, got "yes"',
  ],
  'bad-queue.yaml': [
    '4:20: queue.size: expected an integer from 0 to 1000000, got -1',
    '4:33: queue.timeout "2h" is too long: expected at most 1h',
    '7:26: max_connections: expected an integer from 1 to 1000000, got 0',
    '11:13: queue.size: expected an integer from 0 to 1000000, got 2000000',
    '12:7: unknown key "length" in queue; expected one of: size, timeout',
    '15:26: max_connections: expected an integer from 1 to 1000000, got 1000001',
  ],
  'bad-sticky.yaml': [
    '4:13: missing required key "key" in sticky',
    '4:24: sticky.timeout "8d" is too long: expected at most 7d',
    '10:12: unknown sticky.key "cookie"; expected source',
    '11:13: sticky.size: expected an integer from 1 to 16777216, got 0',
    '16:13: sticky: expected a mapping, got true',
  ],
  'bad-udp.yaml': [
    '5:5: retries does not apply to protocol: udp (a flow whose backend fails moves to another one on its next datagram)',
    '6:16: timeouts.connect does not apply to protocol: udp (UDP has no connect handshake)',
    '7:5: queue does not apply to protocol: udp (datagrams are never held waiting for a backend; they are dropped and counted)',
    '13:14: balance: least_time ranks backends by TCP connect time and does not apply to protocol: udp',
    '14:16: max_flows: expected an integer from 1 to 16777216, got 0',
    '15:22: udp.responses: expected an integer from 0 to 1000000, got -1',
    '15:26: unknown key "reply" in udp; expected one of: nat_ports, responses',
    '20:5: max_flows applies only to protocol: udp (this service has protocol: tcp)',
    '21:5: udp applies only to protocol: udp (this service has protocol: tcp)',
    '26:13: listen address 0.0.0.0:27015 overlaps 127.0.0.1:27015 of service "game" at line 4 (0.0.0.0:27015 takes port 27015 on every address)',
    '27:22: bad duration 0 for timeouts.idle: must be greater than 0',
    '28:5: tcp_keepalive does not apply to protocol: udp (a flow ends when idle for timeouts.idle)',
    '34:15: unknown datapath "turbo"; expected one of: auto, kernel, user',
    '35:22: udp.nat_ports must be FIRST-LAST with 1 <= FIRST <= LAST <= 65535, got 50000-40000',
    '40:5: datapath applies only to protocol: udp (this service has protocol: tcp)',
  ],
  'bad-identity.yaml': [
    '4:5: accept_proxy_from needs accept_proxy: true',
    '5:5: accept_proxy_timeout needs accept_proxy: true',
    '5:27: accept_proxy_timeout "2m" is too long: expected at most 1m',
    '6:17: unknown send_proxy "v3"; expected one of: none, v1, v2',
    '7:13: unknown source "transparent"; expected one of: auto, client',
    '8:13: bad prefix "10.0.0.0/33": the prefix length must be a number from 0 to 32',
    '8:26: bad prefix "host.example": "host.example" is not an IPv4 or IPv6 address',
    '8:42: bad prefix "10.0.0.0/08": the prefix length must be a number from 0 to 32',
    '9:12: bad prefix "2001:db8::/129": the prefix length must be a number from 0 to 128',
    '10:5: client_limits needs at least one of max_connections, connection_rate',
    '10:21: connection_burst needs connection_rate',
    '10:42: client_limits.datagram_rate applies only to protocol: udp (use connection_rate for tcp)',
    '10:73: client_limits.table_size: expected an integer from 16 to 16777216, got 8',
    '16:5: client_limits needs at least one of max_connections, connection_rate',
    "18:18: source: client connects from the client's IPv4 address and cannot reach IPv6 backend [::1]:3306",
    '23:5: accept_proxy does not apply to protocol: udp (the PROXY protocol header is read from a TCP stream)',
    '24:5: send_proxy does not apply to protocol: udp (the PROXY protocol header is written to a TCP stream)',
    '25:5: source does not apply to protocol: udp (source: client applies to TCP connections)',
    '26:5: client_limits needs at least one of datagram_rate',
    '26:21: client_limits.max_connections does not apply to protocol: udp (UDP has flows, not connections; use datagram_rate)',
    '26:41: client_limits.connection_rate does not apply to protocol: udp (UDP has flows, not connections; use datagram_rate)',
    '29:9: send_proxy does not apply to protocol: udp (the header is written to a TCP stream)',
  ],
  'bad-slow-start.yaml': [
    '4:17: slow_start "2h" is too long: expected at most 1h',
    '5:20: drain_timeout "25h" is too long: expected at most 1d',
    '8:21: bad duration "fast" for backends.slow_start: expected a number and a unit (ms, s, m, h, d) such as 500ms, 1.5s or 10m',
    '10:21: bad duration "-5s" for backends.slow_start: expected a number and a unit (ms, s, m, h, d) such as 500ms, 1.5s or 10m',
  ],
  'bad-many.yaml': [
    '2:10: workers: expected "auto" or an integer from 1 to 256, got 0',
    '3:15: unknown log.level "verbose"; expected one of: fatal, error, warn, info, debug, trace',
    '7:15: backends must not be empty',
    '9:13: duplicate listen address 127.0.0.1:6432 (also used by service "pg" at line 6)',
    '10:14: unknown balance "fastest"; expected one of: roundrobin, weighted, leastconn, random, source, maglev, least_time, least_bandwidth, first',
    '13:17: weight: expected an integer from 0 to 256, got 1000',
    '14:5: unknown key "timeout" in service; did you mean "timeouts"? expected one of: name, protocol, listen, ipv6_only, balance, hash_key, maglev_table_size, backends, timeouts, tcp_keepalive, retries, slow_start, queue, sticky, drain_timeout, health_check, passive, accept_proxy, accept_proxy_from, accept_proxy_timeout, send_proxy, postgres_cancel, relay, source, allow, deny, client_limits, datapath, max_flows, udp',
  ],
  'bad-health-check.yaml': [
    '4:55: health_check.timeout must not exceed interval (1s): a check would still run when the next is due',
    '4:59: user applies only to health_check type postgres or mysql or redis (this check has type http)',
    '4:76: health_check.rise: expected an integer from 1 to 100, got 0',
    '7:30: unknown health_check.type "gopher"; expected one of: tcp, send_expect, http, udp, postgres, mysql, redis, none',
    '9:24: send_hex applies only to health_check type send_expect or udp (this check has type http)',
    '9:34: send_hex: expected an even number of hex digits (spaces allowed), got "0g"',
    '9:54: expect_regex is not a valid regular expression: Invalid regular expression: /(/: Unterminated group',
    '9:65: health_check.path: expected a path that starts with / (printable ASCII, no spaces), got "no-slash"',
    '12:5: a send_expect check needs send (or send_hex), expect (or expect_hex, expect_regex), or both',
    '12:49: bad duration "fast" for health_check.interval: expected a number and a unit (ms, s, m, h, d) such as 500ms, 1.5s or 10m',
    '12:63: health_check.jitter: expected a number from 0 to 0.5, got 0.9',
    '17:5: a udp check needs send (or send_hex): the datagram to send',
    '17:45: give one of expect, expect_hex, expect_regex (found expect and expect_hex)',
    "20:9: expect applies only to health_check type send_expect or udp or http (this check has type tcp) (with the keys of the service's health_check)",
    "20:9: expect_hex applies only to health_check type send_expect or udp or http (this check has type tcp) (with the keys of the service's health_check)",
  ],
  'bad-health-credentials.yaml': [
    '4:36: role primary needs user (and usually a password): the role is read after logging in',
    '4:51: password_env needs user',
    '9:72: give the password in password_env or password_file, not both',
    '12:38: health_check.password_env: expected an environment variable name (A-Z a-z 0-9 _, not starting with a digit), got "1BAD"',
    '15:33: a redis user needs a password (password_env or password_file)',
    '15:54: unknown health_check.role "leader"; expected one of: primary, replica, any',
  ],
  'bad-passive.yaml': [
    '4:37: passive.consecutive_failures: expected an integer from 1 to 1000, got 0',
    '4:73: passive.max_ejection must be at least base_ejection',
    '4:100: passive.max_ejection_percent: expected an integer from 0 to 100, got 150',
    '9:30: passive.base_ejection "2h" is too long: expected at most 1h',
    '9:34: unknown key "eject_for" in passive; expected one of: consecutive_failures, base_ejection, max_ejection, max_ejection_percent',
  ],
};

function v4(host: string, port: number): Endpoint {
  return { host, port, family: 4, text: `${host}:${port}` };
}
function v6(host: string, port: number): Endpoint {
  return { host, port, family: 6, text: `[${host}]:${port}` };
}
/**
 * A service with every default, overridden by `fields`. The default that comes
 * from another key (queue timeout: the connect timeout) is that of a config
 * without it. (A service's drain_timeout is its own: 0, never, by default.)
 */
function service(fields: Partial<ServiceConfig> & Pick<ServiceConfig, 'name' | 'listen' | 'backends'>): ServiceConfig {
  return {
    protocol: 'tcp',
    ipv6Only: false,
    balance: 'roundrobin',
    timeouts: { connectMs: 2000, idleMs: 0 },
    tcpKeepalive: fields.protocol === 'udp' ? undefined : { idleMs: 60_000, intervalMs: 15_000, count: 8 },
    retries: 2,
    hashKey: 'five_tuple',
    maglevTableSize: 65_537,
    queue: { size: 1024, timeoutMs: fields.timeouts?.connectMs ?? 2000 },
    sticky: undefined,
    drainTimeoutMs: 0,
    udp: { maxFlows: 16_384, responses: 0, datapath: 'auto', natPorts: { first: 20_000, count: 10_000 } },
    acceptProxy: undefined,
    allow: [],
    deny: [],
    clientLimits: undefined,
    source: 'auto',
    postgresCancel: 'auto',
    relay: 'auto',
    ...fields,
  };
}
/** A backend with every default, overridden by `fields`. */
function backend(address: Endpoint, fields: Partial<Omit<BackendConfig, 'address'>> = {}): BackendConfig {
  return { address, weight: 1, backup: false, maxConnections: 0, slowStartMs: 0, sendProxy: 'none', ...fields };
}

/** The admin section of a config without one. */
const DEFAULT_ADMIN: FulcrumConfig['admin'] = { listen: v4('127.0.0.1', 8406), token: undefined, tokenFile: undefined, maxConnections: 256 };

/** Each good fixture and the config it must load as (`file` is filled in by the test). */
const GOOD_FIXTURES: Record<string, Omit<FulcrumConfig, 'file'>> = {
  'good-minimal.yaml': {
    workers: availableParallelism(),
    drainTimeoutMs: 30_000,
    log: { level: 'info', format: 'json' },
    connectionLog: DEFAULT_CONNECTION_LOG,
    admin: DEFAULT_ADMIN,
    services: [service({ name: 'pg', listen: v4('127.0.0.1', 6432), backends: [backend(v4('127.0.0.1', 5432))] })],
  },
  'good-full.yaml': {
    workers: 4,
    drainTimeoutMs: 1500,
    log: { level: 'debug', format: 'json' },
    connectionLog: DEFAULT_CONNECTION_LOG,
    admin: DEFAULT_ADMIN,
    services: [
      service({
        name: 'v6.svc-1',
        listen: v6('::1', 7000),
        balance: 'weighted',
        backends: [
          backend(v6('::1', 7001), { weight: 256 }),
          backend(v4('127.0.0.1', 7002)),
        ],
        timeouts: { connectMs: 1500, idleMs: 86_400_000 },
        retries: 0,
      }),
      service({
        name: 'any',
        listen: v4('0.0.0.0', 7000),
        backends: [backend(v4('10.1.2.3', 80))],
        timeouts: { connectMs: 500, idleMs: 0 },
        retries: 16,
      }),
    ],
  },
  'good-admin.yaml': {
    workers: availableParallelism(),
    drainTimeoutMs: 30_000,
    log: { level: 'info', format: 'json' },
    connectionLog: DEFAULT_CONNECTION_LOG,
    admin: {
      listen: v4('0.0.0.0', 9443),
      token: 'Zm9vYmFyYmF6cXV4LXRva2VuLTEyMzQ1Njc4',
      tokenFile: join(FIXTURES, 'admin.token'),
      maxConnections: 256,
    },
    services: [service({ name: 'pg', listen: v4('127.0.0.1', 6432), backends: [backend(v4('127.0.0.1', 5432))] })],
  },
  'good-lifecycle.yaml': {
    workers: availableParallelism(),
    drainTimeoutMs: 45_000,
    log: { level: 'info', format: 'json' },
    connectionLog: DEFAULT_CONNECTION_LOG,
    admin: DEFAULT_ADMIN,
    services: [
      service({
        name: 'mysql',
        listen: v4('127.0.0.1', 3307),
        balance: 'maglev',
        hashKey: 'source',
        maglevTableSize: 251,
        backends: [
          backend(v4('10.0.0.1', 3306), { weight: 0, maxConnections: 500, slowStartMs: 30_000 }),
          backend(v4('10.0.0.2', 3306), { weight: 256, maxConnections: 1_000_000, slowStartMs: 0 }),
          backend(v4('10.0.0.3', 3306), { backup: true, slowStartMs: 60_000 }),
          backend(v4('10.0.0.4', 3306), { slowStartMs: 30_000 }),
        ],
        timeouts: { connectMs: 1000, idleMs: 0 },
        queue: { size: 0, timeoutMs: 250 },
        sticky: { key: 'source', timeoutMs: 7_200_000, size: 1000 },
        drainTimeoutMs: 300_000,
      }),
      service({
        name: 'defaults',
        listen: v4('127.0.0.1', 3308),
        balance: 'maglev',
        backends: [backend(v4('10.0.0.5', 3306), { slowStartMs: 3_600_000 })],
        timeouts: { connectMs: 3000, idleMs: 0 },
        queue: { size: 1_000_000, timeoutMs: 3000 },
        sticky: { key: 'source', timeoutMs: 1_800_000, size: 65_536 },
      }),
    ],
  },
  'good-identity.yaml': {
    workers: availableParallelism(),
    drainTimeoutMs: 30_000,
    log: { level: 'info', format: 'json' },
    connectionLog: DEFAULT_CONNECTION_LOG,
    admin: DEFAULT_ADMIN,
    services: [
      service({
        name: 'pg',
        listen: v4('127.0.0.1', 6432),
        acceptProxy: { from: ['10.0.0.0/8', '2001:db8::1/128'], timeoutMs: 1500 },
        allow: ['192.0.2.0/24', '10.0.0.7/32', '2001:db8::/32'],
        deny: ['192.0.2.128/25'],
        clientLimits: { maxConnections: 20, rate: 5, burst: 5, tableSize: 65_536 },
        backends: [
          backend(v4('127.0.0.1', 5432), { sendProxy: 'v2' }),
          backend(v4('127.0.0.1', 5433), { sendProxy: 'v1' }),
          backend(v4('127.0.0.1', 5434), { sendProxy: 'none' }),
        ],
      }),
      service({
        name: 'mysql',
        listen: v4('127.0.0.1', 3307),
        acceptProxy: { from: undefined, timeoutMs: 3000 },
        source: 'client',
        deny: ['0.0.0.0/0'],
        clientLimits: { maxConnections: 0, rate: 100, burst: 300, tableSize: 1024 },
        backends: [backend(v4('127.0.0.1', 3306))],
      }),
      service({
        name: 'game',
        protocol: 'udp',
        listen: v4('127.0.0.1', 27015),
        balance: 'maglev',
        timeouts: { connectMs: 2000, idleMs: 30_000 },
        deny: ['::ffff:10.0.0.0/104'],
        clientLimits: { maxConnections: 0, rate: 1000, burst: 50, tableSize: 65_536 },
        backends: [backend(v4('127.0.0.1', 27016))],
      }),
    ],
  },
  'good-udp.yaml': {
    workers: availableParallelism(),
    drainTimeoutMs: 30_000,
    log: { level: 'info', format: 'json' },
    connectionLog: DEFAULT_CONNECTION_LOG,
    admin: DEFAULT_ADMIN,
    services: [
      service({
        name: 'game',
        protocol: 'udp',
        listen: v4('0.0.0.0', 27015),
        balance: 'maglev',
        timeouts: { connectMs: 2000, idleMs: 30_000 },
        backends: [backend(v4('10.0.0.1', 27015)), backend(v4('10.0.0.2', 27015))],
      }),
      service({ name: 'game-tcp', listen: v4('0.0.0.0', 27015), backends: [backend(v4('10.0.0.1', 27015))] }),
      service({
        name: 'dns',
        protocol: 'udp',
        listen: v4('127.0.0.1', 53),
        balance: 'random',
        timeouts: { connectMs: 2000, idleMs: 2000 },
        udp: { maxFlows: 100_000, responses: 1, datapath: 'auto', natPorts: { first: 20_000, count: 10_000 } },
        backends: [backend(v4('10.0.0.3', 53), { maxConnections: 5000 })],
      }),
    ],
  },
  'good-algorithms.yaml': {
    workers: availableParallelism(),
    drainTimeoutMs: 30_000,
    log: { level: 'info', format: 'json' },
    connectionLog: DEFAULT_CONNECTION_LOG,
    admin: DEFAULT_ADMIN,
    services: [
      ...(['roundrobin', 'weighted', 'leastconn', 'random', 'source', 'maglev', 'least_time', 'least_bandwidth'] as const).map((balance, i) =>
        service({
          name: ['rr', 'wrr', 'lc', 'p2c', 'src', 'mg', 'lt', 'lb'][i] ?? '',
          listen: v4('127.0.0.1', 7001 + i),
          balance,
          backends: [backend(v4('10.0.0.1', 80), balance === 'weighted' ? { weight: 3 } : {})],
        }),
      ),
      service({
        name: 'fill',
        listen: v4('127.0.0.1', 7009),
        balance: 'first',
        backends: [backend(v4('10.0.0.1', 80)), backend(v4('10.0.0.2', 80))],
      }),
    ],
  },
};

t.test('every good fixture has a row, and every row a fixture', async (t) => {
  const files = (await readdir(FIXTURES)).filter((f) => f.startsWith('good-')).sort();
  t.same(files, Object.keys(GOOD_FIXTURES).sort());
});

t.test('every bad fixture has a row, and every row a fixture', async (t) => {
  const files = (await readdir(FIXTURES)).filter((f) => f.startsWith('bad-')).sort();
  t.same(files, Object.keys(BAD_FIXTURES).sort());
  t.ok(files.length >= 10);
});

for (const [fixture, expected] of Object.entries(BAD_FIXTURES)) {
  t.test(`${fixture} is rejected with exactly the expected issues`, async (t) => {
    const file = join(FIXTURES, fixture);
    const err = await loadConfig(file).then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!(err instanceof ConfigError)) {
      t.fail(`expected a ConfigError, got ${String(err)}`);
      return;
    }
    t.equal(err.code, 'FULCRUM_ERR_CONFIG');
    t.equal(err.message, expected.map((issue) => `${file}:${issue}`).join('\n'));
    t.same(
      err.issues.map((i) => `${i.line}:${i.column}: ${i.message}`),
      expected,
    );
    t.ok(err.issues.every((i) => i.file === file));
  });
}

for (const [fixture, expected] of Object.entries(GOOD_FIXTURES)) {
  t.test(`${fixture} loads as the expected config`, async (t) => {
    const file = join(FIXTURES, fixture);
    const { text, resolvers, ...loaded } = await loadConfig(file);
    t.equal(text, await readFile(file, 'utf8'), 'the text as loaded is kept (config dump)');
    t.ok(resolvers, 'resolvers: has its defaults');
    // `written` is the file's own text of the service (API-added backends are validated against it).
    t.same({ ...loaded, services: loaded.services.map(({ written: _written, ...s }) => s) }, { file, ...expected });
  });
}

t.test('parseConfig: file names issues as given and becomes absolute in the config', async (t) => {
  const text = await readFile(join(FIXTURES, 'good-minimal.yaml'), 'utf8');
  t.equal(parseConfig(text, 'rel/dir/x.yaml').file, resolve('rel/dir/x.yaml'));
  t.throws(() => parseConfig('services: 3\n', 'rel/x.yaml'), {
    code: 'FULCRUM_ERR_CONFIG',
    message: 'rel/x.yaml:1:11: services: expected a non-empty list, got 3',
  });
});

t.test('parseConfig: a YAML alias bomb is refused, not expanded', async (t) => {
  const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i < 8; i++) {
    const prev = String.fromCharCode(96 + i);
    const name = String.fromCharCode(97 + i);
    lines.push(`${name}: &${name} [${Array(10).fill(`*${prev}`).join(', ')}]`);
  }
  t.throws(() => parseConfig(lines.join('\n'), 'bomb.yaml'), {
    message: 'bomb.yaml:1:1: cannot expand YAML aliases: Excessive alias count indicates a resource exhaustion attack',
  });
});

t.test('loadConfig: an unreadable file is a ConfigError naming the path and errno', async (t) => {
  const missing = join(FIXTURES, 'no-such-file.yaml');
  await t.rejects(loadConfig(missing), {
    code: 'FULCRUM_ERR_CONFIG',
    message: `${missing}: cannot read config: no such file (ENOENT)`,
    issues: [{ file: missing, line: 0, column: 0, message: 'cannot read config: no such file (ENOENT)' }],
  });
  await t.rejects(loadConfig(FIXTURES), { message: `${FIXTURES}: cannot read config: is a directory (EISDIR)` });
});

t.test('errors: stable codes, one base class', async (t) => {
  const config = new ConfigError([{ file: 'f.yaml', line: 2, column: 3, message: 'm' }]);
  t.ok(config instanceof FulcrumError && config instanceof Error);
  t.equal(config.name, 'ConfigError');
  t.equal(config.message, 'f.yaml:2:3: m');
  const usage = new UsageError('missing command', 'check');
  t.ok(usage instanceof FulcrumError);
  t.equal(usage.code, 'FULCRUM_ERR_USAGE');
  t.equal(usage.command, 'check');
  t.throws(() => new ConfigError([]), TypeError);
});

/** [input, expected canonical text, or the error message] for parseEndpoint. */
const ENDPOINTS: [unknown, 'listen' | 'backend', string][] = [
  ['127.0.0.1:80', 'backend', '127.0.0.1:80'],
  ['localhost:80', 'backend', '127.0.0.1:80'],
  ['*:80', 'listen', '0.0.0.0:80'],
  ['[::]:80', 'listen', '[::]:80'],
  ['[0:0::1]:80', 'backend', '[::1]:80'],
  ['[FD00:0:0:0:0:0:0:12]:5432', 'backend', '[fd00::12]:5432'],
  ['*:80', 'backend', 'bad address "*:80": host "*" is not an IP address, localhost or a host name'],
  ['127.000.0.1:80', 'listen', 'bad listen address "127.000.0.1:80": host "127.000.0.1" is not an IP address, localhost or * (a listen address is never resolved)'],
  ['[::1]80', 'listen', 'bad listen address "[::1]80": expected [v6]:port, e.g. [::1]:7000'],
  ['[1.2.3.4]:80', 'listen', 'bad listen address "[1.2.3.4]:80": "1.2.3.4" is not an IPv6 address'],
  [':80', 'listen', 'bad listen address ":80": missing host; expected host:port, e.g. 127.0.0.1:6432'],
  ['1.2.3.4:http', 'backend', 'bad address "1.2.3.4:http": port "http" is not a number; expected 1 to 65535'],
  [6432, 'listen', 'bad listen address 6432: expected host:port, e.g. 127.0.0.1:6432'],
  ['[::]:80', 'backend', 'bad address "[::]:80": a backend needs a specific host, not the wildcard ::'],
];

t.test('parseEndpoint', async (t) => {
  for (const [input, role, expected] of ENDPOINTS) {
    const result = parseEndpoint(input, role);
    t.equal(result.ok ? result.endpoint.text : result.message, expected, `${role} ${String(input)}`);
  }
});

/** [input, expected milliseconds, or the error message] for parseDuration with a 1h limit. */
const DURATIONS: [unknown, number | string][] = [
  ['500ms', 500],
  ['1.5s', 1500],
  ['10m', 600_000],
  ['1h', 3_600_000],
  // A bare number is refused: `idle: 3600` was read as 3.6 s; the message says how to write it.
  [3600, 'bad duration 3600 for x: a duration needs a unit: write 3600s for seconds or 3600ms for milliseconds (expected a number and a unit (ms, s, m, h, d) such as 500ms, 1.5s or 10m)'],
  [1.5, 'bad duration 1.5 for x: a duration needs a unit: write 1.5s for seconds or 1.5ms for milliseconds (expected a number and a unit (ms, s, m, h, d) such as 500ms, 1.5s or 10m)'],
  [0, 'bad duration 0 for x: must be greater than 0'],
  ['2h', 'x "2h" is too long: expected at most 1h'],
  ['1.5', 'bad duration "1.5" for x: expected a number and a unit (ms, s, m, h, d) such as 500ms, 1.5s or 10m'],
  ['3600', 'bad duration "3600" for x: expected a number and a unit (ms, s, m, h, d) such as 500ms, 1.5s or 10m'],
  ['0s', 'bad duration "0s" for x: must be greater than 0'],
  [true, 'bad duration true for x: expected a number and a unit (ms, s, m, h, d) such as 500ms, 1.5s or 10m'],
];

t.test('parseDuration and formatDuration', async (t) => {
  for (const [input, expected] of DURATIONS) {
    const result = parseDuration(input, 'x', 3_600_000);
    t.equal(result.ok ? result.ms : result.message, expected, String(input));
  }
  // Where 0 turns a feature off (slow_start), 0 in any unit is accepted; below 0 still is not.
  for (const [input, expected] of [[0, 0], ['0s', 0], ['0.0ms', 0], ['30s', 30_000], ['-1s', 'bad duration "-1s" for x: ' + DURATION_EXPECTED], [30, 'bad duration 30 for x: a duration needs a unit: write 30s for seconds or 30ms for milliseconds (' + DURATION_EXPECTED + ')']] as const) {
    const result = parseDuration(input, 'x', 3_600_000, { zero: 'off' });
    t.equal(result.ok ? result.ms : result.message, expected, `${String(input)} with zero: off`);
  }
  t.same([1500, 90_000, 3_600_000, 86_400_000, 1].map(formatDuration), ['1500ms', '90s', '1h', '1d', '1ms']);
});

t.test('isPrime and nearestPrimes (maglev_table_size)', async (t) => {
  t.same([2, 3, 251, 65_521, 65_537, 4_194_301].map(isPrime), [true, true, true, true, true, true]);
  t.same([0, 1, 4, 255, 65_536, 4_194_300, 1.5].map(isPrime), [false, false, false, false, false, false, false]);
  t.same(nearestPrimes(65_536), [65_521, 65_537]);
  t.same(nearestPrimes(252), [251, 257]);
  t.same(nearestPrimes(4_194_300), [4_194_287, 4_194_301]);
});

t.test('an unquoted *:PORT: the hint quotes the address as written, not an example', async (t) => {
  const text = 'services:\n  - name: cache\n    listen: *:6380\n    backends: [{ address: 127.0.0.1:6379 }]\n';
  const err = (() => {
    try {
      parseConfig(text, 'star.yaml');
    } catch (e) {
      return e as ConfigError;
    }
    return undefined;
  })();
  t.equal(err?.message, 'star.yaml:3:13: unknown alias *:6380: no anchor &:6380 before it (to write a value that starts with *, quote it: "*:6380")');
});

t.test('the shipped words say TCP/UDP: the example config and the CLI help', async (t) => {
  const yaml = await readFile(join(ROOT, 'config/fulcrum.yaml'), 'utf8');
  t.notMatch(yaml, /only tcp/, 'no "only tcp for now"');
  t.match(yaml, /protocol: tcp +# tcp \(the default\) or udp/);
  const { MAIN_USAGE } = await import('../../src/commands/usage.js');
  t.match(MAIN_USAGE, /layer-4 TCP\/UDP load balancer/);
  const schema = JSON.parse(await readFile(SCHEMA_FILE, 'utf8')) as { description: string };
  t.match(schema.description, /layer-4 TCP\/UDP load balancer/);
});

t.test('the default config is the documented demo', async (t) => {
  const file = join(ROOT, 'config/fulcrum.yaml');
  const { text: _text, resolvers: _resolvers, ...loaded } = await loadConfig(file);
  t.same({ ...loaded, services: loaded.services.map(({ written: _written, ...s }) => s) }, {
    file,
    workers: availableParallelism(),
    drainTimeoutMs: 10_000,
    log: { level: 'info', format: 'json' },
    connectionLog: DEFAULT_CONNECTION_LOG,
    admin: DEFAULT_ADMIN,
    services: [
      service({
        name: 'demo',
        listen: v4('127.0.0.1', 7070),
        balance: 'weighted',
        backends: [
          backend(v4('127.0.0.1', 7071), { weight: 2 }),
          backend(v4('127.0.0.1', 7072)),
          backend(v4('127.0.0.1', 7073)),
        ],
      }),
    ],
  });
});

t.test('every shipped config validates and points editors at the schema', async (t) => {
  const dirs = [join(ROOT, 'config'), join(ROOT, 'config/examples')];
  let count = 0;
  for (const dir of dirs) {
    for (const name of (await readdir(dir)).filter((f) => f.endsWith('.yaml'))) {
      const file = join(dir, name);
      count++;
      await t.resolves(loadConfig(file), name);
      const modeline = /^# yaml-language-server: \$schema=(\S+)$/m.exec(await readFile(file, 'utf8'));
      t.equal(modeline && resolve(dirname(file), modeline[1] ?? ''), SCHEMA_FILE, `${name} names the schema`);
    }
  }
  t.ok(count >= 2);
});

t.test('the schema compiles in strict Ajv and documents every key', async (t) => {
  const schema = readConfigSchema();
  t.equal(new Ajv({ strict: true, allowUnionTypes: true }).validateSchema(schema), true, 'valid against its meta-schema');
  t.type(configValidator(), 'function');
  // Walk every subschema: objects are closed, and every property says what it is for.
  const walk = (node: unknown, where: string): void => {
    if (node === null || typeof node !== 'object') return;
    const s = node as Record<string, unknown>;
    if (s.type === 'object') t.equal(s.additionalProperties, false, `${where} is closed`);
    if (s.properties !== undefined) {
      for (const [key, sub] of Object.entries(s.properties as Record<string, Record<string, unknown>>)) {
        t.type(sub.description, 'string', `${where}.${key} has a description`);
      }
    }
    // if/then branches only fill in defaults for keys described under properties.
    for (const [key, value] of Object.entries(s)) if (key !== 'if' && key !== 'then') walk(value, `${where}/${key}`);
  };
  walk(schema, '#');
});

t.test('[::]:PORT is dual-stack: check rejects an IPv4 service on the same port and protocol, unless ipv6_only', async (t) => {
  const yaml = (...services: string[][]): string =>
    ['services:', ...services.flatMap((keys, i) => [`  - name: s${i}`, ...keys.map((k) => `    ${k}`), '    backends: [{address: 127.0.0.1:7001}]']), ''].join('\n');
  const messageOf = (text: string): string => {
    try {
      parseConfig(text, 'dual.yaml');
      return 'accepted';
    } catch (err) {
      return (err as Error).message;
    }
  };
  t.equal(messageOf(yaml(['listen: "*:6380"'], ['listen: "[::]:6380"'])),
    'dual.yaml:6:13: listen address [::]:6380 overlaps 0.0.0.0:6380 of service "s0" at line 3 ([::]:6380 is dual-stack: it takes port 6380 on every IPv4 address too; set ipv6_only: true on "s1" to keep it to IPv6)');
  t.equal(messageOf(yaml(['listen: "[::]:6380"'], ['listen: 127.0.0.1:6380'])),
    'dual.yaml:6:13: listen address 127.0.0.1:6380 overlaps [::]:6380 of service "s0" at line 3 ([::]:6380 is dual-stack: it takes port 6380 on every IPv4 address too; set ipv6_only: true on "s0" to keep it to IPv6)',
    'a specific IPv4 address overlaps too');
  t.equal(messageOf(yaml(['listen: "*:6380"'], ['listen: "[::]:6380"', 'ipv6_only: true'])), 'accepted', 'ipv6_only: the two are apart');
  t.equal(messageOf(yaml(['listen: "*:6380"'], ['listen: "[::]:6380"', 'protocol: udp'])), 'accepted', 'another protocol is apart');
  t.equal(messageOf(yaml(['listen: "[::1]:6380"'], ['listen: "*:6380"'])), 'accepted', 'only the [::] wildcard is dual-stack');
  t.equal(messageOf(yaml(['listen: "*:6380"', 'ipv6_only: true'])),
    'dual.yaml:4:16: ipv6_only applies to an IPv6 listen address such as [::]:6380; 0.0.0.0:6380 is IPv4');
});

t.test('an IPv4-mapped address is read, shown and used as the IPv4 address it is', async (t) => {
  for (const written of ['[::ffff:127.0.0.1]:7002', '[::ffff:7f00:1]:7002', '[::FFFF:127.0.0.1]:7002']) {
    t.strictSame(parseEndpoint(written, 'backend'), { ok: true, endpoint: v4('127.0.0.1', 7002) }, written);
  }
  t.strictSame(parseEndpoint('[::ffff:10.1.2.3]:80', 'listen'), { ok: true, endpoint: v4('10.1.2.3', 80) });
  t.strictSame(parseEndpoint('[64:ff9b::7f00:1]:80', 'backend'), { ok: true, endpoint: v6('64:ff9b::7f00:1', 80) }, 'NAT64 is not mapped');
});

t.test('source: client needs backends of the clients\' family; a dual-stack [::] has both', async (t) => {
  const messageOf = (listen: string, backend: string, extra = ''): string => {
    try {
      parseConfig(['services:', '  - name: s', `    listen: "${listen}"`, '    source: client', ...(extra ? [`    ${extra}`] : []), `    backends: [{address: "${backend}"}]`, ''].join('\n'), 'src.yaml');
      return 'accepted';
    } catch (err) {
      return (err as Error).message;
    }
  };
  t.equal(messageOf('[::]:80', '127.0.0.1:8080'),
    'src.yaml:4:13: source: client on the dual-stack [::]:80 takes IPv4 and IPv6 clients, and each can only reach backends of its own family; set ipv6_only: true (IPv6 backends) or listen on an IPv4 address');
  t.equal(messageOf('[::]:80', '[::1]:8080', 'ipv6_only: true'), 'accepted');
  t.equal(messageOf('[::]:80', '127.0.0.1:8080', 'ipv6_only: true'),
    "src.yaml:6:26: source: client connects from the client's IPv6 address and cannot reach IPv4 backend 127.0.0.1:8080");
  t.equal(messageOf('*:80', '[::ffff:127.0.0.1]:8080'), 'accepted', 'a mapped backend is IPv4');
});
