// How a Fulcrum ends, as real processes: `fulcrum run` / `fulcrum demo` start,
// relay, and stop by signal (graceful drain, drain timeout, second signal, a
// udp service's flows), plus the npm start path; and the engine's lifetime
// against Node's: a process that exits, or a worker thread that is
// terminated, while connections are open and without calling stop(). The
// addon's environment cleanup hook must stop the worker threads and close the
// sockets: the process exits 0 promptly, and the client sees its connection end.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startEchoServer, startServer } from '../helpers/backends.js';
import { serviceYaml, startCli, startFulcrum, writeConfig } from '../helpers/cli.js';
import { type Conn, connectOutcome, openConn } from '../helpers/traffic.js';
import { startUdpBackend, startUdpFulcrum, udpClient } from '../helpers/udp.js';

/** Send a random payload and expect the same bytes back (the backend echoes). */
async function echoes(t: Test, client: Conn, size: number, what: string): Promise<void> {
  const payload = randomBytes(size);
  client.socket.write(payload);
  const back = await client.read(size);
  t.ok(back.equals(payload), `${what}: ${size} bytes echoed byte-exact`);
}

t.test('graceful stop: refuse new connects, finish open ones, exit 0', async (t) => {
  const backend = await startEchoServer(t);
  const { proc, port } = await startFulcrum(t, (p) => serviceYaml({ listenPort: p, backendPorts: [backend.port], drainTimeout: '30s' }));
  const listening = proc.logs.find((l) => l.msg === 'listening');
  t.match(listening, { service: 'echo', listen: `127.0.0.1:${port}`, backends: [`127.0.0.1:${backend.port}`], balance: 'roundrobin' });

  const client = await openConn(t, port);
  await echoes(t, client, 64 * 1024, 'before the signal');

  proc.signal('SIGTERM');
  await proc.waitForLog('draining', (l) => l.signal === 'SIGTERM');
  t.equal(await connectOutcome(t, port), 'ECONNREFUSED', 'a new connect is refused while draining');

  await echoes(t, client, 256 * 1024, 'while draining');
  t.notOk(proc.exit, 'still running while a connection is open');

  // Half-close from the client: the echo backend ends its side, which reaches us.
  client.socket.end();
  await client.waitEnd();
  t.equal(client.buffered, 0, 'the connection ends cleanly with nothing unread');
  // Well before the 30 s drain timeout.
  const exit = await proc.waitForExit(10_000);
  t.same(exit, { code: 0, signal: null }, 'exits 0');
  t.ok(proc.hasLog('drained'), 'logs that every connection finished');
  t.notOk(proc.hasLog('drain timeout'));
});

t.test('drain timeout: an idle connection is closed and the process exits by itself', async (t) => {
  const backend = await startEchoServer(t);
  const { proc, port } = await startFulcrum(t, (p) => serviceYaml({ listenPort: p, backendPorts: [backend.port], drainTimeout: '1s' }));
  const client = await openConn(t, port);
  await echoes(t, client, 1024, 'before the signal');

  const signalledAt = Date.now();
  proc.signal('SIGTERM');
  await proc.waitForLog('draining');
  const exit = await proc.waitForExit(10_000);
  const elapsed = Date.now() - signalledAt;
  t.same(exit, { code: 0, signal: null }, 'exits 0');
  t.ok(elapsed >= 900, `waited for the drain timeout (${elapsed} ms)`);
  t.ok(proc.hasLog('drain timeout'), 'logs that the drain timed out');
  await client.waitEnd(5_000);
  t.pass('the client sees its connection closed');
});

t.test('a second signal cuts the drain short; a repeat within the same press does not', async (t) => {
  const backend = await startEchoServer(t);
  const { proc, port } = await startFulcrum(t, (p) => serviceYaml({ listenPort: p, backendPorts: [backend.port], drainTimeout: '30s' }));
  const client = await openConn(t, port);
  await echoes(t, client, 1024, 'before the signal');

  // One Ctrl-C under npm start arrives twice at once (terminal + npm forwarding).
  proc.signal('SIGINT');
  proc.signal('SIGINT');
  await proc.waitForLog('draining', (l) => l.signal === 'SIGINT');
  await new Promise((resolve) => setTimeout(resolve, 600));
  t.notOk(proc.exit, 'the doubled signal counted as one: still draining');
  await echoes(t, client, 1024, 'while draining');

  proc.signal('SIGINT');
  const exit = await proc.waitForExit(10_000);
  t.same(exit, { code: 0, signal: null }, 'exits 0 at once');
  t.ok(proc.hasLog('second signal'), 'logs that open connections were cut');
  await client.waitEnd(5_000);
  t.pass('the open connection is closed');
});

t.test('a listen address in use: exit 1 with one line naming it', async (t) => {
  const backend = await startEchoServer(t);
  const busy = await startServer(t, (socket) => socket.end());
  const file = writeConfig(t, serviceYaml({ listenPort: busy.port, backendPorts: [backend.port] }));
  const proc = startCli(t, ['run', '-c', file]);
  const exit = await proc.waitForExit();
  t.equal(exit.code, 1);
  t.match(proc.stderr, new RegExp(`^fulcrum: cannot listen on 127\\.0\\.0\\.1:${busy.port} .*EADDRINUSE`));
  t.equal(proc.stderr.trim().split('\n').length, 1, 'one line');
});

t.test('npm start: demo backends answer through Fulcrum, Ctrl-C stops', async (t) => {
  // The bundled config listens on 127.0.0.1:7070 with backends on 7071-7073.
  for (const port of [7070, 7071, 7072, 7073]) {
    if ((await connectOutcome(t, port)) !== 'ECONNREFUSED') {
      t.skip(`127.0.0.1:${port} is in use (is npm start running?)`);
      return;
    }
  }
  const proc = startCli(t, ['demo', '-c', 'config/fulcrum.yaml']);
  await proc.waitForLog('listening', (l) => l.listen === '127.0.0.1:7070');
  await proc.waitFor('the guide', () => (proc.stdout.includes('Press Ctrl-C') ? true : undefined));
  t.match(proc.stdout, /nc 127\.0\.0\.1 7070/, 'tells how to connect');

  const client = await openConn(t, 7070);
  const banner = await client.readLine();
  t.match(banner, /^fulcrum demo backend 127\.0\.0\.1:707[123]$/, 'a demo backend greets');
  await echoes(t, client, 4096, 'through the demo');
  client.socket.end();
  await client.waitEnd();

  proc.signal('SIGINT');
  const exit = await proc.waitForExit(15_000);
  t.same(exit, { code: 0, signal: null }, 'exits 0');
});

t.test('fulcrum run with a udp service: SIGTERM ends its flows and exits 0 at once', { timeout: 60_000 }, async (t) => {
  const backend = await startUdpBackend(t, 'echo');
  const { proc: cli, port } = await startUdpFulcrum(t, backend.port, []);
  const client = await udpClient(t);
  t.equal((await client.request('hello', port)).data.toString(), 'hello', 'served');
  const listening = cli.logs.filter((l) => l.msg === 'listening');
  t.match(listening, [{ service: 'game', protocol: 'udp', listen: `127.0.0.1:${port}` }], 'the listening line names the protocol');
  const started = Date.now();
  cli.signal('SIGTERM');
  const exit = await cli.waitForExit(10_000);
  t.ok(Date.now() - started < 5_000, 'flows do not hold the drain (they have no stream to finish)');
  t.equal(exit.code, 0, 'exit code 0');
  t.match(cli.stdout, /"msg":"drained: all connections finished"/, 'drained: nothing was left open');
});

const fixture = join(import.meta.dirname, '..', 'fixtures', 'engine-exit.mjs');

for (const mode of ['process-exit', 'worker-terminate']) {
  t.test(`${mode} with an open connection`, async (t) => {
    const { port: backendPort } = await startEchoServer(t);
    const child = spawn(process.execPath, [fixture, mode, String(backendPort)], { stdio: ['pipe', 'pipe', 'inherit'] });
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const lines = createInterface({ input: child.stdout! });
    const messages: Array<Record<string, unknown>> = [];
    const next = async (key: string): Promise<Record<string, unknown>> => {
      for (;;) {
        const found = messages.find((m) => key in m);
        if (found) return found;
        const [line] = (await once(lines, 'line')) as [string];
        messages.push(JSON.parse(line) as Record<string, unknown>);
      }
    };
    const { listening } = (await next('listening')) as { listening: number };

    const client = net.connect(listening, '127.0.0.1');
    client.setEncoding('utf8');
    client.write('ping');
    const [echo] = (await once(client, 'data')) as [string];
    t.equal(echo, 'ping', 'the connection relays before the exit');
    const clientClosed = once(client, 'close');
    client.on('error', () => {});

    const exited = once(child, 'exit');
    child.stdin!.write('go\n');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const [code, signal] = (await exited) as [number | null, string | null];
    clearTimeout(timer);
    t.equal(signal, null, 'not killed (no hang past 10 s, no crash)');
    t.equal(code, 0, 'exit status 0');
    await clientClosed;
    t.pass('the client connection was closed');
  });
}
