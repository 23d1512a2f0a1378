// More clients than file descriptors (a real `fulcrum run` under
// RLIMIT_NOFILE 1024, 3,000 clients at once): the engine stops accepting
// before the process runs out, so clients wait in the kernel's listen backlog
// instead of being accepted and then closed; the admin API keeps answering
// (its descriptors are in reserve); the pause is said in a handful of log
// lines, not one per worker every 100 ms; and every client is served once
// others leave.
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { http } from '../helpers/admin.js';
import { freePort, startBackend } from '../helpers/backends.js';
import { startFulcrum } from '../helpers/cli.js';
import { serviceYaml } from '../helpers/engine.js';
import { HOST, delay, waitUntil } from '../helpers/traffic.js';

const CLIENTS = 3_000;
const NOFILE = 1_024;

interface Client {
  socket: Socket;
  /** The echo of its line came back. */
  served: boolean;
  /** Closed, ended or reset by the other side before its echo came back. */
  lost: string | undefined;
}

/** Connect, send one line, wait for its echo; nothing here ever closes the socket. */
function client(port: number, i: number): Client {
  const socket = connect({ host: HOST, port });
  const line = `client ${i}\n`;
  const c: Client = { socket, served: false, lost: undefined };
  let received = '';
  socket.setEncoding('utf8');
  socket.on('connect', () => socket.write(line));
  socket.on('data', (chunk: string) => {
    received += chunk;
    if (received === line) c.served = true;
  });
  const lost = (why: string) => () => {
    if (!c.served) c.lost ??= why;
  };
  socket.on('end', lost('end'));
  socket.on('error', (err: NodeJS.ErrnoException) => lost(err.code ?? 'error')());
  socket.on('close', lost('close'));
  return c;
}

t.test(`${CLIENTS} clients under RLIMIT_NOFILE ${NOFILE}: none closed, the admin API answers, a few log lines`, { timeout: 150_000 }, async (t) => {
  const echo = await startBackend(t, 'echo');
  const adminPort = await freePort();
  const { proc, port } = await startFulcrum(
    t,
    (p) => `${serviceYaml(p, { backends: [echo.port] }, 2, 'info')}admin:\n  listen: 127.0.0.1:${adminPort}\n`,
    { nofile: NOFILE },
  );
  const base = `http://127.0.0.1:${adminPort}`;
  const clients: Client[] = [];
  t.teardown(() => {
    for (const c of clients) c.socket.destroy();
  });
  // Opened in bursts of 250, all within about 2 s.
  for (let i = 0; i < CLIENTS; i++) {
    clients.push(client(port, i));
    if (i % 250 === 249) await delay(150);
  }
  // Saturated: as many as the budget allows are served, the others wait.
  await waitUntil('the served count to settle', () => clients.filter((c) => c.served).length > 100, 20_000, 100);
  await delay(3_000);
  const servedWhileFull = clients.filter((c) => c.served).length;

  // The admin API answers throughout.
  let answered = 0;
  const tries = 10;
  for (let i = 0; i < tries; i++) {
    const status = await http(base, 'GET', '/api/status').then((r) => r.status, (err: Error) => err.message);
    if (status === 200) answered++;
    await delay(200);
  }
  const status = await http(base, 'GET', '/api/status').catch(() => ({ json: undefined }));
  const metrics = await http(base, 'GET', '/metrics').then((r) => r.text, (err: Error) => err.message);

  // Everyone leaves in turn: those served first, then the others as they get their echo.
  const done = new Set<Client>();
  const deadline = Date.now() + 60_000;
  while (done.size < CLIENTS && Date.now() < deadline) {
    for (const c of clients) {
      if (!done.has(c) && (c.served || c.lost !== undefined)) {
        c.socket.destroy();
        done.add(c);
      }
    }
    await delay(100);
  }
  const served = clients.filter((c) => c.served).length;
  const lost = clients.filter((c) => c.lost !== undefined);
  const pauseLines = proc.logs.filter((l) => l.msg === 'accept_paused').length;
  const resumeLines = proc.logs.filter((l) => l.msg === 'accept_resumed').length;
  const refused = /^fulcrum_service_refused_total\{[^}]*\} (\d+)/m.exec(metrics)?.[1];
  t.comment(
    `served while saturated ${servedWhileFull}; in the end served ${served}, lost ${lost.length} ` +
      `(${[...new Set(lost.map((c) => c.lost))].join(', ')}); admin API ${answered}/${tries}; ` +
      `accept_paused lines ${pauseLines}, accept_resumed lines ${resumeLines}; refused_total ${refused}`,
  );
  t.equal(lost.length, 0, 'no client was closed before its echo');
  t.equal(served, CLIENTS, 'every client was served once others left');
  t.equal(answered, tries, 'the admin API answered every request while saturated');
  t.ok(pauseLines >= 1 && pauseLines <= 4, `the pause is logged, a few times at most (${pauseLines})`);
  t.ok(resumeLines <= 4, `and so is the resume (${resumeLines})`);
  const budget = status.json?.connectionBudget as { maxConnections?: number; fdLimit?: number } | undefined;
  t.match(budget, { fdLimit: NOFILE, maxConnections: Number }, '/api/status shows the budget');
  t.ok(budget?.maxConnections !== undefined && servedWhileFull <= budget.maxConnections, `no more than the budget were served at once (${servedWhileFull})`);
  t.match(metrics, /^fulcrum_connection_budget \d+$/m, '/metrics shows the budget');
  t.match(metrics, /^fulcrum_accept_paused [1-9]\d*$/m, 'and that accepting was paused');
});
