// The kernel relay at scale: a real `fulcrum run` with relay: kernel holds
// thousands of concurrent connections in its maps, which are sized from the
// connection budget (RLIMIT_NOFILE). The issue asks for 10,000: the test opens
// 10,000 where Fulcrum's budget allows it, else as many as the budget allows
// less a margin, and says which. This sandbox's hard RLIMIT_NOFILE is 20,000
// (root cannot raise it: no CAP_SYS_RESOURCE), a budget of ~7,860 connections
// (two sockets each), so here it opens ~7,400 (1,000 under a sanitizer build).
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { http } from '../helpers/admin.js';
import { freePort, startBackend } from '../helpers/backends.js';
import { startFulcrum } from '../helpers/cli.js';
import { serviceYaml } from '../helpers/engine.js';
import { HOST, delay, waitUntil } from '../helpers/traffic.js';

const WANTED = process.env.FULCRUM_SANITIZER ? 1_000 : 10_000;
/** Kept free of the budget: the admin API's polls and what the budget does not count exactly. */
const MARGIN = 400;

interface Client {
  socket: Socket;
  received: string;
  failed: string | undefined;
}

function open(port: number): Client {
  const socket = connect({ host: HOST, port });
  const c: Client = { socket, received: '', failed: undefined };
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (c.received += chunk));
  socket.on('error', (err: NodeJS.ErrnoException) => (c.failed ??= err.code ?? err.message));
  socket.on('end', () => (c.failed ??= 'end'));
  return c;
}

t.test(`relay: kernel holds up to ${WANTED} concurrent connections, each byte-exact`, { timeout: 180_000 }, async (t) => {
  const echo = await startBackend(t, 'echo');
  const adminPort = await freePort();
  const { port } = await startFulcrum(
    t,
    (p) => `${serviceYaml(p, { backends: [echo.port], relay: 'kernel' }, 2, 'info')}admin:\n  listen: 127.0.0.1:${adminPort}\n`,
  );
  const base = `http://127.0.0.1:${adminPort}`;
  const relay = async (): Promise<Record<string, number>> => (await http(base, 'GET', '/api/status')).json.services[0].relay;
  const budget = (await http(base, 'GET', '/api/status')).json.connectionBudget as { maxConnections: number } | null;
  const CONNECTIONS = budget === null ? WANTED : Math.min(WANTED, budget.maxConnections - MARGIN);
  if (CONNECTIONS < WANTED) t.comment(`Fulcrum's connection budget is ${budget!.maxConnections} (RLIMIT_NOFILE): ${CONNECTIONS} connections, not ${WANTED}`);
  t.ok(CONNECTIONS >= Math.min(WANTED, 5_000), `${CONNECTIONS} concurrent connections`);
  const clients: Client[] = [];
  t.teardown(() => {
    for (const c of clients) c.socket.destroy();
  });
  for (let i = 0; i < CONNECTIONS; i++) {
    clients.push(open(port));
    if (i % 500 === 499) await delay(100);
  }
  let inKernel = 0;
  await waitUntil(`all ${CONNECTIONS} in the kernel relay`, () => {
    void relay().then((r) => (inKernel = r.kernelActive ?? 0), () => {});
    return inKernel === CONNECTIONS;
  }, 60_000, 500);
  clients.forEach((c, i) => c.socket.write(`line ${i}\n`));
  await waitUntil('every echo', () => clients.every((c, i) => c.received === `line ${i}\n` || c.failed !== undefined), 60_000, 200);
  const wrong = clients.filter((c, i) => c.received !== `line ${i}\n`);
  t.equal(wrong.length, 0, `every connection got exactly its own line back through the kernel relay (${wrong.length} did not: ${[...new Set(wrong.map((c) => c.failed ?? 'short'))].join(', ')})`);
  const during = await relay();
  t.equal(during.kernelActive, CONNECTIONS, `${CONNECTIONS} connections in the maps at once`);
  t.equal(during.fallbackMapFull + during.fallbackInsertFailed + during.fallbackUnavailable, 0, 'none fell back (the maps are sized for the budget)');
  for (const c of clients) c.socket.end();
  await waitUntil('the maps to empty', () => {
    void relay().then((r) => (inKernel = r.kernelActive ?? 0), () => {});
    return inKernel === 0;
  }, 60_000, 500);
  t.pass('every connection left the maps when it closed');
});
