// Real database servers for the health-check tests, from Debian's packages:
// PostgreSQL (a primary and a standby cloned with pg_basebackup -R),
// MariaDB, Redis (a master and a replica). Each runs as a child process on a
// free port with its data in a temp dir; teardown stops it by PID (waits for
// the exit, bounded) and removes the dir. Nothing relies on systemd or on a
// server left running.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { freePort } from './backends.js';
import { delay } from './traffic.js';

export interface ServerProcess {
  port: number;
  dir: string;
  child: ChildProcess;
  /** Stop the server (signal, then SIGKILL after a bound) and wait for its exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Everything it wrote on stdout/stderr. */
  output(): string;
}

function tempDir(t: Test, prefix: string, owner?: { uid: number; gid: number }): string {
  const dir = mkdtempSync(join(tmpdir(), `fulcrum-health-${prefix}-`));
  if (owner) chownSync(dir, owner.uid, owner.gid);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Spawn a server process and register its stop at teardown. */
function spawnServer(t: Test, command: string, args: readonly string[], port: number, dir: string, stopSignal: NodeJS.Signals = 'SIGTERM'): ServerProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (c: string) => (output += c));
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (output += c));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let done = false;
  child.once('exit', () => (done = true));
  const stop = async (signal: NodeJS.Signals = stopSignal): Promise<void> => {
    if (done || child.pid === undefined) return;
    process.kill(child.pid, signal);
    const killed = setTimeout(() => {
      if (!done && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    }, 10_000);
    await exited;
    clearTimeout(killed);
  };
  t.teardown(() => stop());
  return { port, dir, child, stop, output: () => output };
}

/** Resolves once host:port accepts a TCP connection (bounded). */
export async function waitForPort(port: number, server: ServerProcess | undefined, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (server && server.child.exitCode !== null) throw new Error(`server on port ${port} exited: ${server.output()}`);
    if (Date.now() > deadline) throw new Error(`port ${port} did not open within ${timeoutMs} ms${server ? `: ${server.output()}` : ''}`);
    await delay(50);
  }
}

// ---------------------------------------------------------------- Redis

export interface RedisOptions {
  password?: string;
  replicaOf?: number;
  port?: number;
}

export async function startRedis(t: Test, options: RedisOptions = {}): Promise<ServerProcess> {
  const port = options.port ?? (await freePort());
  const dir = tempDir(t, 'redis');
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'];
  if (options.password) args.push('--requirepass', options.password, '--masterauth', options.password);
  if (options.replicaOf !== undefined) args.push('--replicaof', '127.0.0.1', String(options.replicaOf));
  const server = spawnServer(t, 'redis-server', args, port, dir);
  await waitForPort(port, server);
  return server;
}

/** Run redis-cli against a server (synchronous, bounded). */
export function redisCli(port: number, password: string | undefined, ...command: string[]): string {
  const auth = password ? ['--no-auth-warning', '-a', password] : [];
  return execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...auth, ...command], { encoding: 'utf8', timeout: 10_000 }).trim();
}

// ---------------------------------------------------------------- PostgreSQL

export function pgBin(name: string): string {
  const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const path = `/usr/lib/postgresql/${v}/bin/${name}`;
    if (existsSync(path)) return path;
  }
  throw new Error(`no ${name} under /usr/lib/postgresql/*/bin (install Debian's postgresql)`);
}

export function postgresUser(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

/** Run a PostgreSQL tool as the postgres user (it refuses to run as root). */
function asPostgres(command: string, args: readonly string[]): string {
  return execFileSync('runuser', ['-u', 'postgres', '--', command, ...args], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
}

export interface PostgresPair {
  primary: ServerProcess;
  standby: ServerProcess;
  /** Run SQL on a server through its unix socket as the postgres superuser. */
  sql(server: ServerProcess, query: string): string;
  /** Promote the standby (pg_ctl promote, waits until done). */
  promote(): void;
}

const PG_HBA = [
  'local all all trust',
  'host replication postgres 127.0.0.1/32 trust',
  'host all postgres 127.0.0.1/32 trust',
  'host all fulcrum_md5 127.0.0.1/32 md5',
  'host all all 127.0.0.1/32 scram-sha-256',
  '',
].join('\n');

/** A server process on data dir `data` (postgres runs as the postgres user through setpriv, which execs: its PID is the postmaster's). */
function startPostgresServer(t: Test, dir: string, data: string, port: number, owner: { uid: number; gid: number }): ServerProcess {
  return spawnServer(
    t,
    'setpriv',
    [`--reuid=${owner.uid}`, `--regid=${owner.gid}`, '--init-groups', '--', pgBin('postgres'), '-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'logging_collector=off'],
    port,
    dir,
    // SIGINT: PostgreSQL's fast shutdown.
    'SIGINT',
  );
}

/**
 * A primary with users fulcrum_scram (SCRAM-SHA-256) and fulcrum_md5 (md5),
 * and a standby cloned from it with pg_basebackup -R, running in recovery.
 */
export async function startPostgresPair(t: Test, passwords: { scram: string; md5: string }): Promise<PostgresPair> {
  const owner = postgresUser();
  const { primary, sql, dir, primaryData } = await startPrimary(t, passwords, owner);
  const primaryPort = primary.port;
  const standbyData = join(dir, 'standby');
  asPostgres(pgBin('pg_basebackup'), ['-h', '127.0.0.1', '-p', String(primaryPort), '-U', 'postgres', '-D', standbyData, '-R', '-X', 'stream', '--no-sync']);
  const standbyPort = await freePort();
  const standby = startPostgresServer(t, dir, standbyData, standbyPort, owner);
  await waitForPort(standbyPort, standby);
  await untilReady(() => sql(standby, 'SELECT 1'));
  return {
    primary,
    standby,
    sql,
    promote: () => void asPostgres(pgBin('pg_ctl'), ['promote', '-w', '-t', '30', '-D', standbyData]),
  };
}

export interface PostgresServers {
  servers: ServerProcess[];
  /** Run SQL on a server through its unix socket as the postgres superuser; its output, trimmed. */
  sql(server: ServerProcess, query: string): string;
}

/**
 * `count` independent PostgreSQL servers (each its own initdb, trust
 * authentication for everyone on 127.0.0.1), for tests that balance over
 * several servers that are not replicas of each other.
 */
export async function startPostgresServers(t: Test, count: number): Promise<PostgresServers> {
  const owner = postgresUser();
  const dir = tempDir(t, 'pgs', owner);
  const sql = (server: ServerProcess, query: string): string =>
    asPostgres(pgBin('psql'), ['-h', dir, '-p', String(server.port), '-U', 'postgres', '-d', 'postgres', '-tAXq', '-v', 'ON_ERROR_STOP=1', '-c', query]).trim();
  const servers: ServerProcess[] = [];
  for (let i = 0; i < count; i++) {
    const data = join(dir, `server${i}`);
    asPostgres(pgBin('initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
    const port = await freePort();
    const server = startPostgresServer(t, dir, data, port, owner);
    await waitForPort(port, server);
    await untilReady(() => sql(server, 'SELECT 1'));
    servers.push(server);
  }
  return { servers, sql };
}

/** A PostgreSQL primary alone (no standby), with the users of startPostgresPair. */
export async function startPostgres(t: Test, passwords: { scram: string; md5: string }): Promise<{ primary: ServerProcess; sql(query: string): string }> {
  const { primary, sql } = await startPrimary(t, passwords, postgresUser());
  return { primary, sql: (query) => sql(primary, query) };
}

async function startPrimary(
  t: Test,
  passwords: { scram: string; md5: string },
  owner: { uid: number; gid: number },
): Promise<{ primary: ServerProcess; sql(server: ServerProcess, query: string): string; dir: string; primaryData: string }> {
  const dir = tempDir(t, 'pg', owner);
  const primaryData = join(dir, 'primary');
  asPostgres(pgBin('initdb'), ['-D', primaryData, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  writeFileSync(join(primaryData, 'pg_hba.conf'), PG_HBA);
  const primaryPort = await freePort();
  const primary = startPostgresServer(t, dir, primaryData, primaryPort, owner);
  await waitForPort(primaryPort, primary);
  const sql = (server: ServerProcess, query: string): string => asPostgres(pgBin('psql'), ['-h', dir, '-p', String(server.port), '-U', 'postgres', '-d', 'postgres', '-tAXq', '-v', 'ON_ERROR_STOP=1', '-c', query]).trim();
  await untilReady(() => sql(primary, 'SELECT 1'));
  sql(primary, `SET password_encryption = 'scram-sha-256'; CREATE ROLE fulcrum_scram LOGIN PASSWORD '${passwords.scram}'`);
  sql(primary, `SET password_encryption = 'md5'; CREATE ROLE fulcrum_md5 LOGIN PASSWORD '${passwords.md5}'`);
  return { primary, sql, dir, primaryData };
}

/** Retry `attempt` until it does not throw (a server that listens may still be starting up). */
async function untilReady(attempt: () => unknown, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      attempt();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await delay(100);
    }
  }
}

// ---------------------------------------------------------------- MariaDB

export interface MariaDb {
  server: ServerProcess;
  /** Run SQL as root through the unix socket. */
  sql(query: string): string;
}

export async function startMariaDb(t: Test): Promise<MariaDb> {
  const dir = tempDir(t, 'mariadb');
  const data = join(dir, 'data');
  const socket = join(dir, 'mysqld.sock');
  execFileSync('mariadb-install-db', ['--no-defaults', `--datadir=${data}`, '--user=root', '--auth-root-authentication-method=socket', '--skip-test-db'], {
    encoding: 'utf8',
    timeout: 120_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const port = await freePort();
  const server = spawnServer(
    t,
    'mariadbd',
    [
      '--no-defaults',
      `--datadir=${data}`,
      '--user=root',
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      `--socket=${socket}`,
      `--pid-file=${join(dir, 'mysqld.pid')}`,
      '--skip-name-resolve',
      '--skip-log-bin',
      '--innodb-buffer-pool-size=16M',
      '--log-error=' + join(dir, 'error.log'),
    ],
    port,
    dir,
  );
  await waitForPort(port, server, 60_000);
  const sql = (query: string): string =>
    execFileSync('mariadb', ['--no-defaults', `--socket=${socket}`, '-u', 'root', '-N', '-B', '-e', query], { encoding: 'utf8', timeout: 20_000 }).trim();
  await untilReady(() => sql('SELECT 1'));
  return { server, sql };
}
