// The engine's lifetime against Node's: a process that exits, or a worker
// thread that is terminated, while connections are open and without calling
// stop(). The addon's environment cleanup hook must stop the worker threads
// and close the sockets: the process exits 0 promptly, and the client sees
// its connection end.
import t from 'tap';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { startEchoServer } from '../helpers/backends.js';

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
