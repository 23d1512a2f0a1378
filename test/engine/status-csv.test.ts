// GET /api/status.csv through the admin API of a runtime in this process, with
// real connections: HAProxy's ;csv shape (a "# " header, one line per service
// then per backend), parsed back and checked against what happened: open and
// peak connections against max_connections, a client waiting in the queue,
// totals, the backup flag, a down
// transition and its downtime, the session rate, a check's role column.
// Quoting and the column list are unit-tested in test/unit/status-csv.test.ts.
import t from 'tap';
import { startServer } from '../helpers/backends.js';
import { TOKEN, http, startRuntime } from '../helpers/admin.js';
import { parseCsv } from '../helpers/csv.js';
import { openConn, pingEcho, waitUntil } from '../helpers/traffic.js';

t.test('/api/status.csv: one line per service and backend, the numbers the engine counted', async (t) => {
  const ports: number[] = [];
  for (let i = 0; i < 2; i++) ports.push((await startServer(t, (socket) => socket.pipe(socket))).port);
  const [A, B] = ports.map((p) => `127.0.0.1:${p}`) as [string, string];
  const { base, port, runtime } = await startRuntime(t, (listen) => [
    `admin: { token: ${TOKEN} }`,
    'services:',
    '  - name: pg',
    `    listen: 127.0.0.1:${listen}`,
    '    queue: {size: 5, timeout: 20s}',
    '    backends:',
    `      - address: ${A}`,
    '        max_connections: 2',
    `      - address: ${B}`,
    '        backup: true',
    '',
  ].join('\n'));
  t.equal((await http(base, 'GET', '/api/status.csv')).status, 401, 'the token is required, as for the JSON API');

  // Two connections at once on A (B is a backup), both relaying; a third waits in the queue (A is full).
  const held = [await openConn(t, port), await openConn(t, port)];
  for (const conn of held) await pingEcho(conn);
  const waiting = await openConn(t, port);
  await waitUntil('the third client waits', () => runtime.engine.stats().services[0]!.queued === 1);
  runtime.rates.sample();
  const during = parseCsv((await http(base, 'GET', '/api/status.csv', { token: TOKEN })).text);
  const qcur = during[0]!.indexOf('qcur');
  t.strictSame([during[1]![qcur], during[2]![qcur]], ['1', ''], 'qcur: one client waiting now, on the service line');
  // B goes down for a moment: one transition.
  runtime.control.setHealth('pg', B, 'down');
  await new Promise((r) => setTimeout(r, 1_100));
  runtime.control.setHealth('pg', B, 'up');
  for (const conn of held) conn.socket.destroy();
  await pingEcho(waiting);
  waiting.socket.destroy();
  await waitUntil('the connections are closed', () => runtime.engine.stats().services[0]!.active === 0);

  const res = await http(base, 'GET', '/api/status.csv', { token: TOKEN });
  t.equal(res.status, 200);
  t.match(res.headers['content-type'], /^text\/csv; charset=utf-8$/);
  const rows = parseCsv(res.text);
  const header = rows[0]!;
  t.equal(header[0], '# pxname', 'the header line starts with "# ", as HAProxy\'s');
  const names = header.map((h, i) => (i === 0 ? h.slice(2) : h));
  t.equal(rows.length, 4, 'header, the service, its two backends');
  t.equal(res.text.split('\n').filter((l) => l.startsWith('# ')).length, 1, 'one header line');
  t.ok(rows.every((r) => r.length === names.length), `every line has the ${names.length} columns`);
  const line = (svname: string): Record<string, string> => Object.fromEntries(names.map((n, i) => [n, rows.find((r) => r[1] === svname)![i]!]));

  const service = line('SERVICE');
  t.match(service, { pxname: 'pg', type: 'service', listen: `127.0.0.1:${port}`, status: 'OPEN', scur: '0', stot: '3', econ: '0', qcur: '0', qtot: '1', qrefused: '0', weight: '', chkdown: '' }, 'the service line');
  t.ok(Number(service.rate_max) >= 1, `the session rate was sampled (rate_max ${service.rate_max})`);

  t.match(line(A), { pxname: 'pg', type: 'backend', status: 'UP', admin: 'enabled', check: 'none', role: '', weight: '1', bck: '0', scur: '0', smax: '2', slim: '2', stot: '3', chkdown: '0', downtime: '0', qcur: '', qtot: '' }, 'A: peak 2 of max_connections 2; the queued client was served there');
  t.match(line(B), { status: 'UP', bck: '1', smax: '0', slim: '', stot: '0', chkdown: '1' }, 'B: a backup, down once');
  t.ok(['1', '2'].includes(line(B).downtime!), `B was down about a second (${line(B).downtime})`);
  t.equal(Number(line(A).bin), 5 * 3, 'bytes counted (three pings of 5 bytes)');
});
