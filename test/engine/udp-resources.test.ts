// protocol: udp keeps its resources bounded: every flow's socket is given
// back when the flow ends, and running out of file descriptors drops new
// flows (counted) without harming the flows that have sockets, until
// expiring flows free some.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import type { Test } from 'tap';
import { delay, runBounded, waitUntil } from '../helpers/traffic.js';
import { freeUdpPort, startUdpBackend, startUdpService, udpClient, udpServiceYaml, type UdpClient } from '../helpers/udp.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

t.test('no file descriptor leaks after 2,000 flows come and go', { timeout: 120_000 }, async (t) => {
  const backend = await startUdpBackend(t, 'echo');
  const { port, service } = await startUdpService(t, { backends: [backend.port], keys: ['timeouts: {idle: 200ms}', 'max_flows: 500'] });
  const oneFlow = async (i: number): Promise<void> => {
    const client = await udpClient(t);
    await client.request(`flow ${i}`, port);
    await new Promise<void>((resolve) => client.socket.close(() => resolve()));
  };
  await runBounded(100, 20, oneFlow); // warm-up
  await waitUntil('warm-up flows to expire', () => service().udp?.flowsActive === 0, 5_000);
  const before = openFds();
  await runBounded(2000, 50, (i) => oneFlow(i + 100));
  const during = service().udp!;
  // A client port the kernel hands out again within the idle timeout finds
  // its predecessor's flow still open, so a few flows serve two clients.
  t.ok(during.flowsCreated >= 1900, `about 2,100 flows created (${during.flowsCreated})`);
  await waitUntil('every flow to end', () => service().udp?.flowsActive === 0, 10_000);
  const after = openFds();
  t.ok(after <= before + 2, `file descriptors after the flows ended: ${after}, before: ${before}`);
  t.equal(service().backends[0]!.active, 0, 'the backend holds no flow');
});

interface LimitedCli {
  pid: number;
  port: number;
  alive(): boolean;
  exitCode(): number | null;
  output(): string;
}

/** `node dist/cli.js run` with at most `nofile` file descriptors, one udp service; killed at teardown. */
async function startLimitedCli(t: Test, nofile: number, backendPort: number, keys: string[]): Promise<LimitedCli> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-udp-emfile-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freeUdpPort();
  const file = join(dir, 'fulcrum.yaml');
  writeFileSync(file, udpServiceYaml(port, { backends: [backendPort], keys }, 2).replace('level: warn', 'level: info'));
  const hasPrlimit = ['/usr/bin/prlimit', '/bin/prlimit'].some((p) => existsSync(p));
  const [cmd, args] = hasPrlimit
    ? ['prlimit', [`--nofile=${nofile}:${nofile}`, process.execPath, CLI, 'run', '-c', file]]
    : ['sh', ['-c', `ulimit -n ${nofile} && exec "$0" "$@"`, process.execPath, CLI, 'run', '-c', file]];
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let exited = false;
  let code: number | null = null;
  const exit = new Promise<void>((resolve) => child.once('exit', (c) => {
    exited = true;
    code = c;
    resolve();
  }));
  t.teardown(async () => {
    if (exited || child.pid === undefined) return;
    process.kill(child.pid, 'SIGKILL');
    await exit;
  });
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  await waitUntil('fulcrum to log "listening"', () => exited || out.includes('"msg":"listening"'), 15_000);
  if (exited) throw new Error(`fulcrum run exited before listening\n${out}`);
  return { pid: child.pid ?? -1, port, alive: () => !exited, exitCode: () => code, output: () => out };
}

t.test('out of file descriptors: new flows are dropped, flows with sockets go on, expiry frees room', { timeout: 120_000 }, async (t) => {
  const backend = await startUdpBackend(t, 'echo');
  const cli = await startLimitedCli(t, 96, backend.port, ['timeouts: {idle: 1500ms}']);
  const served: UdpClient[] = [];
  let refused = 0;
  for (let i = 0; i < 150 && refused < 3; i++) {
    const client = await udpClient(t);
    try {
      await client.request(`flow ${i}`, cli.port, undefined, 2, 150);
      served.push(client);
    } catch {
      refused++;
    }
  }
  t.ok(refused >= 3, `new flows stopped being served after ${served.length} (fd limit 96)`);
  t.ok(served.length > 0, 'some were served before');
  t.ok(cli.alive(), 'fulcrum is still running');
  // The flows that have sockets still work.
  const recent = served.slice(-5);
  for (const client of recent) {
    const reply = await client.request('still here', cli.port, undefined, 3, 300);
    t.equal(reply.data.toString(), 'still here', 'a flow opened before the shortage still works');
  }
  // Once flows expire, their sockets are free again for new ones.
  await delay(2_000);
  const late = await udpClient(t);
  const reply = await late.request('after expiry', cli.port, undefined, 10, 300);
  t.equal(reply.data.toString(), 'after expiry', 'a new flow is served once idle ones have expired');
  t.ok(cli.alive(), 'and fulcrum never stopped');
});

t.test('fulcrum run with a udp service: SIGTERM ends its flows and exits 0 at once', { timeout: 60_000 }, async (t) => {
  const backend = await startUdpBackend(t, 'echo');
  const cli = await startLimitedCli(t, 1024, backend.port, []);
  const client = await udpClient(t);
  t.equal((await client.request('hello', cli.port)).data.toString(), 'hello', 'served');
  const listening = cli.output().split('\n').filter((l) => l.includes('"msg":"listening"')).map((l) => JSON.parse(l) as Record<string, unknown>);
  t.match(listening, [{ service: 'game', protocol: 'udp', listen: `127.0.0.1:${cli.port}` }], 'the listening line names the protocol');
  const started = Date.now();
  process.kill(cli.pid, 'SIGTERM');
  await waitUntil('fulcrum to exit', () => !cli.alive(), 10_000);
  t.ok(Date.now() - started < 5_000, 'flows do not hold the drain (they have no stream to finish)');
  t.equal(cli.exitCode(), 0, 'exit code 0');
  t.match(cli.output(), /"msg":"drained: all connections finished"/, 'drained: nothing was left open');
});
