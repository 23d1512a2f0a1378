// Resources stay bounded: no file descriptor leaks after many connections,
// and running out of file descriptors pauses accepting instead of crashing or
// spinning, then accepting resumes.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import type { Test } from 'tap';
import { freePort, startBackend } from '../helpers/backends.js';
import { serviceYaml, startService } from '../helpers/engine.js';
import { type Conn, delay, openConn, pingEcho, runBounded, waitUntil } from '../helpers/traffic.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

/** Open file descriptors of this process (the engine runs in it). */
function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** One short connection: connect, echo a few bytes, close from our side, wait until closed. */
async function shortConnection(t: Test, port: number, i: number): Promise<void> {
  const conn = await openConn(t, port);
  await pingEcho(conn, `hello ${i}\n`);
  conn.socket.end();
  await conn.waitClosed(5_000);
  conn.socket.destroy();
}

t.test('no file descriptor leaks after 10,000 connections', { timeout: 120_000 }, async (t) => {
  const CONNECTIONS = 10_000;
  const CONCURRENCY = 50;
  const echo = await startBackend(t, 'echo');
  const { engine, port, service } = await startService(t, { backends: [echo.port] });

  // Warm up: fill the pipe pools and let Node open whatever it opens lazily.
  await runBounded(200, CONCURRENCY, (i) => shortConnection(t, port, i));
  await waitUntil('warm-up connections to close', () => engine.activeConnections() === 0, 10_000);
  const fdsBefore = openFds();
  const pooledBefore = engine.stats().pooledPipes;

  const started = Date.now();
  await runBounded(CONNECTIONS, CONCURRENCY, (i) => shortConnection(t, port, i));
  t.comment(`${CONNECTIONS} connections in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  await waitUntil('every connection to close', () => engine.activeConnections() === 0, 10_000);

  // The only descriptors the engine may keep after its connections are gone
  // are pooled (empty) pipes, two fds each. Counters are read live; wait
  // (bounded) for the workers' last releases to be published.
  const accounted = () => openFds() - fdsBefore === 2 * (engine.stats().pooledPipes - pooledBefore);
  await waitUntil('fds to match the pipe pools', accounted, 5_000).catch(() => undefined);
  const fdsAfter = openFds();
  const pooledAfter = engine.stats().pooledPipes;
  t.equal(fdsAfter - fdsBefore, 2 * (pooledAfter - pooledBefore),
    `fd growth (${fdsBefore} -> ${fdsAfter}) is exactly the pooled pipes' (${pooledBefore} -> ${pooledAfter}) two fds each`);
  const stats = service();
  t.equal(stats.accepted, CONNECTIONS + 200, 'every connection was accepted');
  t.equal(stats.failed, 0, 'none failed');
  t.equal(stats.active, 0, 'none is open');
});

/** CPU time (user + system) of a process in seconds, from /proc/PID/stat. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name, which may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticksPerSecond = 100; // USER_HZ: 100 on every Linux ABI Node supports
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

interface LimitedCli {
  pid: number;
  port: number;
  logs: Array<Record<string, unknown>>;
  alive(): boolean;
  output(): string;
}

/**
 * Run `node dist/cli.js run` with at most `nofile` file descriptors
 * (prlimit, else the shell's ulimit; both exec, so the PID is node's), on a
 * free port; resolves once it logs `listening`. Killed by PID at teardown.
 */
async function startLimitedCli(t: Test, nofile: number, backendPort: number, attempts = 5): Promise<LimitedCli> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-emfile-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const hasPrlimit = ['/usr/bin/prlimit', '/bin/prlimit'].some((p) => existsSync(p));
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const file = join(dir, 'fulcrum.yaml');
    writeFileSync(file, serviceYaml(port, { backends: [backendPort] }, 2, 'info'));
    const [cmd, args] = hasPrlimit
      ? ['prlimit', [`--nofile=${nofile}:${nofile}`, process.execPath, CLI, 'run', '-c', file]]
      : ['sh', ['-c', `ulimit -n ${nofile} && exec "$0" "$@"`, process.execPath, CLI, 'run', '-c', file]];
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let exited = false;
    const logs: Array<Record<string, unknown>> = [];
    const exit = new Promise<void>((resolve) => child.once('exit', () => {
      exited = true;
      resolve();
    }));
    t.teardown(async () => {
      if (exited || child.pid === undefined) return;
      process.kill(child.pid, 'SIGKILL');
      await exit;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const lines = stdout.split('\n');
      logs.length = 0;
      for (const line of lines.slice(0, -1)) if (line.startsWith('{')) logs.push(JSON.parse(line) as Record<string, unknown>);
    });
    const cli: LimitedCli = {
      pid: child.pid ?? -1,
      port,
      logs,
      alive: () => !exited,
      output: () => `--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`,
    };
    try {
      await waitUntil('fulcrum to log "listening"', () => exited || logs.some((l) => l.msg === 'listening'), 15_000);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${cli.output()}`);
    }
    if (!exited) return cli;
    if (!stderr.includes('EADDRINUSE') || attempt >= attempts) throw new Error(`fulcrum run exited before listening\n${cli.output()}`);
  }
}

/** Connect and echo a line within timeoutMs; undefined when Fulcrum does not serve it in time. */
async function tryServed(t: Test, port: number, i: number, timeoutMs: number): Promise<Conn | undefined> {
  let conn: Conn;
  try {
    conn = await openConn(t, port, timeoutMs);
  } catch {
    return undefined; // the listen queue is full too
  }
  try {
    await pingEcho(conn, `hold ${i}\n`, timeoutMs);
    return conn;
  } catch {
    conn.socket.destroy();
    return undefined;
  }
}

t.test('running out of file descriptors pauses accepting, without crashing or spinning', { timeout: 90_000 }, async (t) => {
  if (!existsSync(CLI)) {
    t.fail(`${CLI} is missing: compile first (npx tsc -p .; npm test does)`);
    return;
  }
  const MAX_CONNECTIONS = 200;
  const echo = await startBackend(t, 'echo');
  const cli = await startLimitedCli(t, 96, echo.port);

  // Open connections until one is not served within 3 s (generous: only the last one waits).
  const held: Conn[] = [];
  let saturated = false;
  for (let i = 0; i < MAX_CONNECTIONS && !saturated; i++) {
    const conn = await tryServed(t, cli.port, i, 3_000);
    if (conn) held.push(conn);
    else saturated = true;
  }
  t.ok(saturated, `fulcrum stopped serving new connections after ${held.length} (fd limit 96)\n`);
  t.ok(held.length > 0, 'it served some before');
  await waitUntil('an accept_paused log line', () => cli.logs.some((l) => l.msg === 'accept_paused'), 5_000)
    .catch((err: Error) => t.fail(`${err.message}\n${cli.output()}`));
  const paused = cli.logs.find((l) => l.msg === 'accept_paused');
  t.match(paused, { code: /^E(M|N)FILE$/ }, 'it says why: out of file descriptors');

  // Saturated, it must idle: a busy loop on a listener it cannot accept from
  // would burn a whole core.
  const cpuBefore = cpuSeconds(cli.pid);
  await delay(1_000);
  const cpuUsed = cpuSeconds(cli.pid) - cpuBefore;
  t.ok(cli.alive(), 'the process is alive');
  t.ok(cpuUsed < 0.2, `it is not spinning: ${cpuUsed.toFixed(2)} s of CPU in 1 s while saturated`);

  // Those it did accept still work.
  await pingEcho(held[0]!, 'still served\n', 5_000);

  for (const conn of held) conn.socket.destroy();
  await Promise.all(held.map((conn) => conn.waitClosed(5_000)));

  // Accepting resumes once descriptors are free again.
  const conn = await openConn(t, cli.port, 5_000);
  await pingEcho(conn, 'after\n', 5_000);
  t.pass('a new connection is served again');
  t.ok(cli.alive(), 'the process is still alive');
  t.ok(cli.logs.some((l) => l.msg === 'accept_resumed'), 'and logged accept_resumed');
});
