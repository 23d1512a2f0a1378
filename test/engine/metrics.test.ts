// /metrics parses as Prometheus text (a strict reader, test/helpers/prometheus.ts)
// and carries the expected series with exact values after real traffic:
// connections, bytes each way, queue counters, backend state and health,
// check latency from the health source's history, HA state when present.
import t from 'tap';
import type { FulcrumConfig } from '../../src/config/types.js';
import type { HealthVerdict } from '../../src/control/backend-control.js';
import type { BackendHealth, CheckRecord, HaSource, HaStatus, HealthSource } from '../../src/control/types.js';
import { startEchoServer } from '../helpers/backends.js';
import { TOKEN, http, startRuntime } from '../helpers/admin.js';
import { parsePrometheus, sampleValue, type Family } from '../helpers/prometheus.js';
import { echoStream, openConn, waitUntil } from '../helpers/traffic.js';

/** A health source whose check history the test writes (the real checker lives in src/health/). */
class RecordedHealth implements HealthSource {
  readonly history = new Map<string, CheckRecord[]>();
  #config: FulcrumConfig | undefined;
  snapshot(): BackendHealth[] {
    return (this.#config?.services ?? []).flatMap((s) =>
      s.backends.map((b): BackendHealth => {
        const history = this.history.get(b.address.text) ?? [];
        return { service: s.name, backend: b.address.text, checkType: 'tcp', status: history.at(-1)?.ok === false ? 'down' : 'up', rise: 2, fall: 0, history, ejections: 1 };
      }),
    );
  }
  update(config: FulcrumConfig): void {
    this.#config = config;
  }
  initialVerdict(): HealthVerdict {
    return 'up';
  }
  stop(): void {}
}

const HA: HaStatus = { state: 'master', vrid: 51, priority: 150, effectivePriority: 140, virtualIps: ['10.0.0.100'], transitions: 3, counters: { adverts_sent: 42, adverts_received: 7 } };

const yaml = (backends: number[]) => (port: number): string =>
  [
    'workers: 2',
    `admin: { token: ${TOKEN} }`,
    'services:',
    '  - name: web',
    `    listen: 127.0.0.1:${port}`,
    '    queue: { size: 0 }',
    '    backends:',
    ...backends.map((p) => `      - address: 127.0.0.1:${p}\n        max_connections: 1`),
    '',
  ].join('\n');

t.test('metrics: the expected series, exact after real traffic', async (t) => {
  const one = await startEchoServer(t);
  const two = await startEchoServer(t);
  const A = `127.0.0.1:${one.port}`;
  const B = `127.0.0.1:${two.port}`;
  const health = new RecordedHealth();
  const now = Date.now();
  health.history.set(A, [
    { at: now - 3000, ok: true, latencyMs: 0.4, detail: 'connected' },
    { at: now - 2000, ok: true, latencyMs: 3, detail: 'connected' },
    { at: now - 1000, ok: false, latencyMs: 700, detail: 'ETIMEDOUT' },
  ]);
  const ha: HaSource = { status: () => HA };
  const { base, port, runtime, write } = await startRuntime(t, yaml([one.port, two.port]), { health, ha });
  const scrape = async (): Promise<Map<string, Family>> => {
    const res = await http(base, 'GET', '/metrics', { token: TOKEN });
    t.equal(res.status, 200);
    t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4; charset=utf-8/);
    return parsePrometheus(res.text);
  };
  const v = (m: Map<string, Family>, family: string, labels: Record<string, string> = {}, name?: string): number | undefined => sampleValue(m, family, labels, name);

  // Two byte-exact echo streams, one per backend (round robin).
  const size = 300_000;
  await echoStream(t, port, 'metrics-1', size, 10_000);
  await echoStream(t, port, 'metrics-2', size, 10_000);
  // Both backends full (max_connections 1, queue 0): a third client is refused.
  const held = [await openConn(t, port), await openConn(t, port)];
  await waitUntil('two connections held', () => runtime.engine.stats().services[0]!.active === 2);
  const refused = await openConn(t, port);
  await refused.waitEnd();
  await waitUntil('the refusal counted', () => runtime.engine.stats().services[0]!.refused === 1);

  let m = await scrape();
  t.equal(v(m, 'fulcrum_service_connections_total', { service: 'web' }), 5, 'accepted: 2 streams + 2 held + 1 refused');
  t.equal(v(m, 'fulcrum_service_connections_active', { service: 'web' }), 2);
  t.equal(v(m, 'fulcrum_service_connections_failed_total', { service: 'web' }), 0);
  t.equal(v(m, 'fulcrum_service_refused_total', { service: 'web' }), 1);
  t.equal(v(m, 'fulcrum_service_queued_total', { service: 'web' }), 0);
  t.equal(v(m, 'fulcrum_service_queue_timeouts_total', { service: 'web' }), 0);
  t.equal(v(m, 'fulcrum_service_bytes_total', { service: 'web', direction: 'in' }), 2 * size, 'bytes client to backend');
  t.equal(v(m, 'fulcrum_service_bytes_total', { service: 'web', direction: 'out' }), 2 * size, 'bytes backend to client');
  t.equal(v(m, 'fulcrum_service_backends_up', { service: 'web' }), 2);
  for (const backend of [A, B]) {
    const l = { service: 'web', backend };
    t.equal(v(m, 'fulcrum_backend_connections_total', l), 2, `${backend}: one stream and one held connection`);
    t.equal(v(m, 'fulcrum_backend_connections_active', l), 1);
    t.equal(v(m, 'fulcrum_backend_connect_failures_total', l), 0);
    t.equal(v(m, 'fulcrum_backend_bytes_total', { ...l, direction: 'in' }), size);
    t.equal(v(m, 'fulcrum_backend_bytes_total', { ...l, direction: 'out' }), size);
    t.equal(v(m, 'fulcrum_backend_up', l), 1);
    t.equal(v(m, 'fulcrum_backend_state', { ...l, state: 'up' }), 1);
    t.equal(v(m, 'fulcrum_backend_state', { ...l, state: 'drain' }), 0);
    t.equal(v(m, 'fulcrum_backend_admin_state', { ...l, state: 'enabled' }), 1);
    t.equal(v(m, 'fulcrum_backend_health_up', { ...l, check: 'tcp' }), 1);
    t.equal(v(m, 'fulcrum_backend_weight', l), 1);
    t.equal(v(m, 'fulcrum_backend_ejections_total', l), 1);
    t.equal(v(m, 'fulcrum_backend_connections_peak', l), 1, 'max_connections 1: a peak of 1');
    t.equal(v(m, 'fulcrum_backend_down_transitions_total', l), 0);
    t.equal(v(m, 'fulcrum_backend_downtime_seconds_total', l), 0);
  }
  for (const c of held) c.socket.destroy();

  // The connection log's aggregates (every connection, whatever the log writes).
  const w = { service: 'web' };
  t.equal(v(m, 'fulcrum_connections_ended_total', { ...w, termination: 'queue_full' }), 1, 'the refused client, by how it ended');
  const ended = [...(m.get('fulcrum_connections_ended_total')?.samples ?? [])].filter((s) => s.labels.service === 'web').reduce((a, s) => a + s.value, 0);
  t.equal(ended, 3, 'the two streams and the refused client ended (the held two are open)');
  t.equal(m.get('fulcrum_connection_connect_seconds')?.type, 'histogram');
  t.equal(v(m, 'fulcrum_connection_connect_seconds', w, 'fulcrum_connection_connect_seconds_count'), 2, 'a connect time per stream (not the refused one)');
  t.equal(v(m, 'fulcrum_connection_connect_seconds', { ...w, le: '5' }, 'fulcrum_connection_connect_seconds_bucket'), 2);
  t.equal(v(m, 'fulcrum_connection_bytes', w, 'fulcrum_connection_bytes_count'), 2);
  t.equal(v(m, 'fulcrum_connection_bytes', w, 'fulcrum_connection_bytes_sum'), 4 * size, 'bytes per session, both ways');
  t.equal(v(m, 'fulcrum_connection_bytes', { ...w, le: '262144' }, 'fulcrum_connection_bytes_bucket'), 0);
  t.equal(v(m, 'fulcrum_connection_bytes', { ...w, le: '1048576' }, 'fulcrum_connection_bytes_bucket'), 2, '600,000 bytes each: the 1 MiB bucket');
  t.equal(v(m, 'fulcrum_connection_duration_seconds', w, 'fulcrum_connection_duration_seconds_count'), 2);
  t.equal(v(m, 'fulcrum_connection_queue_seconds', w, 'fulcrum_connection_queue_seconds_count'), 0, 'nobody waited in the queue (size 0)');
  t.ok((v(m, 'fulcrum_connection_log_records_total', { result: 'written' }) ?? -1) >= 0, 'the log records counter');

  // Check latency: the last one, and a histogram of every check seen, by result.
  const la = { service: 'web', backend: A };
  t.equal(v(m, 'fulcrum_health_check_last_duration_seconds', la), 0.7);
  t.equal(v(m, 'fulcrum_health_check_duration_seconds', { ...la, result: 'ok' }, 'fulcrum_health_check_duration_seconds_count'), 2);
  t.equal(v(m, 'fulcrum_health_check_duration_seconds', { ...la, result: 'fail' }, 'fulcrum_health_check_duration_seconds_count'), 1);
  t.equal(v(m, 'fulcrum_health_check_duration_seconds', { ...la, result: 'ok', le: '0.0005' }, 'fulcrum_health_check_duration_seconds_bucket'), 1);
  t.equal(v(m, 'fulcrum_health_check_duration_seconds', { ...la, result: 'ok', le: '0.005' }, 'fulcrum_health_check_duration_seconds_bucket'), 2);
  t.equal(v(m, 'fulcrum_health_check_duration_seconds', { ...la, result: 'fail', le: '0.5' }, 'fulcrum_health_check_duration_seconds_bucket'), 0);
  t.equal(v(m, 'fulcrum_health_check_duration_seconds', { ...la, result: 'fail', le: '1' }, 'fulcrum_health_check_duration_seconds_bucket'), 1);
  t.ok(Math.abs(v(m, 'fulcrum_health_check_duration_seconds', { ...la, result: 'ok' }, 'fulcrum_health_check_duration_seconds_sum')! - 0.0034) < 1e-9);
  t.equal(m.get('fulcrum_health_check_duration_seconds')?.type, 'histogram');
  t.equal(m.get('fulcrum_service_connections_total')?.type, 'counter');
  t.equal(m.get('fulcrum_backend_up')?.type, 'gauge');
  t.equal(v(m, 'fulcrum_health_check_last_duration_seconds', { service: 'web', backend: B }), undefined, 'no check yet: no last duration');

  // HA state when present.
  t.equal(v(m, 'fulcrum_ha_state', { state: 'master' }), 1);
  t.equal(v(m, 'fulcrum_ha_state', { state: 'backup' }), 0);
  t.equal(v(m, 'fulcrum_ha_priority'), 150);
  t.equal(v(m, 'fulcrum_ha_effective_priority'), 140);
  t.equal(v(m, 'fulcrum_ha_transitions_total'), 3);
  t.equal(v(m, 'fulcrum_ha_events_total', { event: 'adverts_sent' }), 42);
  t.equal(v(m, 'fulcrum_config_generation'), 1);
  t.ok(m.has('fulcrum_process_resident_memory_bytes'), 'process metrics');

  // A second scrape observes only the checks that are new since the first.
  health.history.get(A)!.push({ at: Date.now(), ok: true, latencyMs: 1, detail: 'connected' });
  runtime.control.setAdmin('web', B, 'drain');
  m = await scrape();
  t.equal(v(m, 'fulcrum_health_check_duration_seconds', { ...la, result: 'ok' }, 'fulcrum_health_check_duration_seconds_count'), 3, 'one new check, none counted twice');
  t.equal(v(m, 'fulcrum_health_check_duration_seconds', { ...la, result: 'fail' }, 'fulcrum_health_check_duration_seconds_count'), 1);
  t.equal(v(m, 'fulcrum_backend_state', { service: 'web', backend: B, state: 'drain' }), 1);
  t.equal(v(m, 'fulcrum_backend_up', { service: 'web', backend: B }), 0);
  t.equal(v(m, 'fulcrum_backend_admin_state', { service: 'web', backend: B, state: 'drain' }), 1);
  t.equal(v(m, 'fulcrum_service_backends_up', { service: 'web' }), 1);

  // A backend removed by a reload leaves no series behind.
  write(yaml([two.port])(port));
  t.match(await runtime.reload('api'), { ok: true, removed: [`web/${A}`] });
  m = await scrape();
  t.equal(v(m, 'fulcrum_backend_up', la), undefined, 'removed backend: no state series');
  t.equal(v(m, 'fulcrum_health_check_duration_seconds', { ...la, result: 'ok' }, 'fulcrum_health_check_duration_seconds_count'), undefined, 'nor histogram');
  t.equal(v(m, 'fulcrum_config_generation'), 2);
  t.equal(v(m, 'fulcrum_reloads_total', { result: 'applied' }), 1);
  write('services: []\n');
  t.match(await runtime.reload('api'), { ok: false });
  m = await scrape();
  t.equal(v(m, 'fulcrum_reloads_total', { result: 'rejected' }), 1, 'a rejected reload is counted');
  t.equal(v(m, 'fulcrum_config_generation'), 2, 'and changes nothing');
  t.equal(v(m, 'fulcrum_service_connections_total', { service: 'web' }), 5, 'service counters survive a reload');
});

t.test('metrics: without HA there are no HA series; HA attached later appears', async (t) => {
  const one = await startEchoServer(t);
  const { base, runtime } = await startRuntime(t, yaml([one.port]));
  const res = await http(base, 'GET', '/metrics', { token: TOKEN });
  const m = parsePrometheus(res.text);
  t.notOk([...m.keys()].some((name) => name.startsWith('fulcrum_ha_')));
  t.equal(sampleValue(m, 'fulcrum_backend_health_up', { service: 'web', check: 'none' }), 1, 'the placeholder health source says up, check none');
  t.equal((await http(base, 'GET', '/api/status', { token: TOKEN })).json.ha, null);

  // `fulcrum run` starts VRRP after the listeners, so HA is attached to a running runtime.
  runtime.attachHa({ status: () => ({ ...HA, state: 'backup' }) });
  const later = parsePrometheus((await http(base, 'GET', '/metrics', { token: TOKEN })).text);
  t.equal(sampleValue(later, 'fulcrum_ha_state', { state: 'backup' }), 1);
  t.equal(sampleValue(later, 'fulcrum_ha_state', { state: 'master' }), 0);
  const status = (await http(base, 'GET', '/api/status', { token: TOKEN })).json;
  t.match(status.ha, { state: 'backup', vrid: 51, virtualIps: ['10.0.0.100'] });
  t.match((await http(base, 'GET', '/api/ha', { token: TOKEN })).json, { state: 'backup', priority: 150 });
});

t.test('the Prometheus reader rejects what Prometheus would', async (t) => {
  t.throws(() => parsePrometheus('x 1\n'), /sample before any HELP/);
  t.throws(() => parsePrometheus('# HELP x h\n# TYPE x gauge\nx{a="1} 1\n'), /unterminated/);
  t.throws(() => parsePrometheus('# HELP x h\n# TYPE x gauge\nx 1\nx 2\n'), /duplicate series/);
  t.throws(() => parsePrometheus('# HELP x h\n# TYPE x gauge\ny 1\n'), /does not belong/);
  t.throws(() => parsePrometheus('# HELP x h\n# TYPE x gauge\nx one\n'), /bad value/);
  t.throws(() => parsePrometheus('# HELP x h\n# TYPE x gauge\nx 1'), /end with a newline/);
  t.same(sampleValue(parsePrometheus('# HELP x h\n# TYPE x gauge\nx{a="q\\"\\\\"} 2.5\n'), 'x', { a: 'q"\\' }), 2.5);
});
