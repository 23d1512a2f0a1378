// The health_check and passive keys as the checker receives them: defaults
// (HAProxy's for checks, Envoy's for ejection), a backend's keys laid over its
// service's, `type: none`, and the values parsed once (hex, regex, durations).
// Malformed keys are covered by the bad-health-*.yaml and bad-passive.yaml
// fixtures in config.test.ts.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { loadConfig, parseConfig } from '../../src/config/load.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function load(service: string, backends: string[]) {
  return parseConfig(['services:', '  - name: s', '    listen: 127.0.0.1:7000', ...service.split('\n').map((l) => `    ${l}`), '    backends:', ...backends.map((b) => `      - ${b}`), ''].join('\n'), 'x.yaml').services[0]!;
}

t.test('defaults: tcp, 2s, fast 500ms, 1s, rise 2, fall 3, jitter 0.1; no health_check: no check', async (t) => {
  const s = load('health_check: {}', ['address: 127.0.0.1:7001']);
  t.same(s.backends[0]!.healthCheck, {
    type: 'tcp', intervalMs: 2000, fastIntervalMs: 500, timeoutMs: 1000, rise: 2, fall: 3, jitter: 0.1, port: undefined, send: undefined,
    expect: undefined, path: '/', host: undefined, expectStatus: undefined, role: 'any', user: undefined, database: undefined, password: undefined,
  });
  t.equal(s.passive, undefined, 'no passive key: passive health off');
  const none = load('balance: roundrobin', ['address: 127.0.0.1:7001']);
  t.notOk('healthCheck' in none.backends[0]!, 'no health_check: the key is absent (always up)');
  const fast = load('health_check: {interval: 200ms}', ['address: 127.0.0.1:7001']).backends[0]!.healthCheck!;
  t.same([fast.fastIntervalMs, fast.timeoutMs], [100, 200], 'fast_interval at least 100ms; timeout at most the interval');
});

t.test("a backend's keys override its service's; type none turns the check off for one backend", async (t) => {
  const s = load('health_check: {type: postgres, role: primary, user: mon, password_env: PGPW, interval: 5s}', [
    'address: 127.0.0.1:7001',
    'address: 127.0.0.1:7002\n        health_check: {port: 6000, role: replica, password_file: pw.txt}',
    'address: 127.0.0.1:7003\n        health_check: {type: none}',
  ]);
  const [a, b, c] = s.backends;
  t.match(a!.healthCheck, { type: 'postgres', role: 'primary', user: 'mon', password: { env: 'PGPW' }, intervalMs: 5000, port: undefined });
  t.match(b!.healthCheck, { type: 'postgres', role: 'replica', user: 'mon', password: { file: 'pw.txt' }, intervalMs: 5000, port: 6000 }, 'the file replaces the env source');
  t.equal(c!.healthCheck, undefined);
});

t.test('send/expect values are parsed once: text, hex, regex; http statuses', async (t) => {
  const hex = load('health_check: {type: send_expect, send_hex: "0d 0A ff", expect_hex: "2b4f4b"}', ['address: 127.0.0.1:7001']).backends[0]!.healthCheck!;
  t.same([...hex.send!], [0x0d, 0x0a, 0xff]);
  t.same(hex.expect, { bytes: Buffer.from('+OK'), text: '0x2b4f4b' });
  const re = load('health_check: {type: udp, send: "ping\\n", expect_regex: "^po+ng$"}', ['address: 127.0.0.1:7001']).backends[0]!.healthCheck!;
  t.equal(re.send!.toString(), 'ping\n', 'YAML escapes apply');
  t.ok('regex' in re.expect! && re.expect.regex.test('pooong'));
  const http = load('health_check: {type: http, expect_status: 204, path: /health?full=1, host: api.example}', ['address: 127.0.0.1:7001']).backends[0]!.healthCheck!;
  t.same([http.expectStatus, http.path, http.host], [[204], '/health?full=1', 'api.example']);
});

t.test('passive defaults: 5 failures, 30s base, 300s max, 50%', async (t) => {
  t.same(load('passive: {}', ['address: 127.0.0.1:7001']).passive, { consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionMs: 300_000, maxEjectionPercent: 50 });
  t.same(load('passive: {base_ejection: 10m}', ['address: 127.0.0.1:7001']).passive!.maxEjectionMs, 600_000, 'max_ejection is at least base_ejection');
});

t.test('the example config loads with the checks it documents', async (t) => {
  const config = await loadConfig(join(ROOT, 'config/examples/health-checks.yaml'));
  const byName = new Map(config.services.map((s) => [s.name, s]));
  t.match(byName.get('pg-write')!.backends[0]!.healthCheck, { type: 'postgres', role: 'primary', fastIntervalMs: 500 });
  t.match(byName.get('pg-read')!.backends[1]!.healthCheck, { role: 'replica' });
  t.equal(byName.get('web')!.backends[1]!.healthCheck!.port, 8081);
  t.equal(byName.get('web')!.backends[0]!.healthCheck!.port, undefined);
  t.same(byName.get('pg-write')!.passive, { consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionMs: 300_000, maxEjectionPercent: 50 });
});
