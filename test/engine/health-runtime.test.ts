// The health checker inside the running balancer (FulcrumRuntime, as `fulcrum
// run` builds it) seen through the admin API: /api/status shows each backend's
// check, verdict and history; /metrics its health gauge and check durations; an
// operator's drain wins over a passing check; a reload through the API adds a
// backend that waits for its first passing check and changes check settings.
import t from 'tap';
import { startIdBackends, whoAnswers } from '../helpers/backends.js';
import { http, startRuntime } from '../helpers/admin.js';
import { HOST, waitUntil } from '../helpers/traffic.js';

function yaml(ports: number[], check: string): (listen: number) => string {
  return (listen) =>
    [
      'workers: 1',
      'log: { level: info }',
      'services:',
      '  - name: svc',
      `    listen: ${HOST}:${listen}`,
      `    health_check: ${check}`,
      '    backends:',
      ...ports.map((p) => `      - address: ${HOST}:${p}`),
      '',
    ].join('\n');
}

const CHECK = '{type: tcp, interval: 150ms, fast_interval: 100ms, timeout: 100ms, rise: 2, fall: 2}';

t.test('the admin API and metrics show the checker; drain wins over health; a reload adds a backend down until it passes', async (t) => {
  const backends = await startIdBackends(t, 3);
  const [a, b, c] = backends as [(typeof backends)[0], (typeof backends)[0], (typeof backends)[0]];
  const rt = await startRuntime(t, yaml([a.port, b.port], CHECK), { workers: 1 });
  const backendView = async (address: string) => {
    const status = await http(rt.base, 'GET', '/api/status');
    return (status.json.services[0].backends as Array<Record<string, any>>).find((x) => x.address === address)!;
  };
  await waitUntil('two checks of b', () => (rt.runtime.health.snapshot().find((h) => h.backend === b.address)?.history.length ?? 0) >= 2, 3_000);
  process.kill(b.pid, 'SIGKILL');
  await waitUntil('b down', () => rt.runtime.control.status('svc', b.address).health === 'down', 3_000);
  const view = await backendView(b.address);
  t.match(view, { state: 'down', health: 'down', admin: 'enabled', check: { type: 'tcp', fall: 2 } }, '/api/status: down by its check');
  t.match(view.check.history.at(-1), { ok: false, detail: 'ECONNREFUSED connecting' });
  const metrics = await http(rt.base, 'GET', '/metrics');
  t.match(metrics.text, new RegExp(`fulcrum_backend_health_up\\{service="svc",backend="${b.address.replace(/\./g, '\\.')}",check="tcp"\\} 0`), '/metrics: health gauge 0');
  t.match(metrics.text, /fulcrum_health_check_duration_seconds_count\{[^}]*result="fail"\} [1-9]/, '/metrics: failed checks observed');
  t.ok(rt.logs.some((l) => l.msg === `backend ${b.address} of svc is down: tcp check failed: ECONNREFUSED connecting`), 'the runtime logs the reason');

  // The operator's drain wins over a passing check.
  const drained = await http(rt.base, 'POST', `/api/services/svc/backends/${encodeURIComponent(a.address)}/drain`, {});
  t.equal(drained.status, 200, drained.text);
  await new Promise((r) => setTimeout(r, 400));
  t.match(await backendView(a.address), { state: 'drain', health: 'up' }, 'a passes its checks and stays drained');

  // Reload through the API: c added (down until its first check), check settings changed.
  rt.write(yaml([a.port, b.port, c.port], '{type: tcp, interval: 100ms, fast_interval: 100ms, timeout: 100ms, rise: 1, fall: 1}')(rt.port));
  const reloaded = await http(rt.base, 'POST', '/api/reload', {});
  t.equal(reloaded.json?.ok, true, reloaded.text);
  await waitUntil('c up', () => rt.runtime.control.status('svc', c.address).health === 'up', 3_000);
  const cChanges = rt.logs.filter((l) => l.backend === c.address && typeof l.reason === 'string').map((l) => l.reason);
  t.match(cChanges, [/^added by reload: waiting for the first check$/, /^tcp check passed: connected$/], 'c started down, said why once (info), and came up on its first passing check');
  t.same(await whoAnswers(t, rt.port), 'c', 'c takes connections (a drained, b down)');
  t.ok(rt.logs.some((l) => l.msg === 'health check settings changed' && l.backend === a.address), 'changed settings logged');
});
