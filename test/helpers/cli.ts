// Helpers for tests that run the real CLI (`node dist/cli.js ...`) against
// real sockets on 127.0.0.1. Every process and socket they create is
// registered with t.teardown; every wait is bounded in time.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(ROOT, 'dist', 'cli.js');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface CliResult extends Exit {
  stdout: string;
  stderr: string;
}

/** Run the CLI to completion (for commands that exit by themselves). */
export function runCli(t: Test, args: readonly string[], timeoutMs = 20_000): Promise<CliResult> {
  const proc = startCli(t, args);
  return proc.waitForExit(timeoutMs).then((exit) => ({ ...exit, stdout: proc.stdout, stderr: proc.stderr }));
}

/** One JSON log line (pino): `msg`, `level` (number) and the logged fields. */
export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

/** A running CLI process whose stdout/stderr are collected as they arrive. */
export class CliProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly logs: LogLine[] = [];
  exit: Exit | undefined;
  readonly #exited: Promise<Exit>;
  readonly #watchers = new Set<() => void>();
  #partial = '';

  constructor(args: readonly string[], cwd = ROOT) {
    this.child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => this.#onStdout(chunk));
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      this.#notify();
    });
    this.#exited = new Promise((resolve) => {
      // 'close' (not 'exit') so every byte of output has been read.
      this.child.once('close', (code, signal) => {
        this.exit = { code, signal };
        this.#notify();
        resolve(this.exit);
      });
    });
  }

  #onStdout(chunk: string): void {
    this.stdout += chunk;
    const lines = (this.#partial + chunk).split('\n');
    this.#partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        this.logs.push(JSON.parse(line) as LogLine);
      } catch {
        // Not a log line (demo guide text); kept in `stdout` only.
      }
    }
    this.#notify();
  }

  #notify(): void {
    for (const watcher of [...this.#watchers]) watcher();
  }

  /**
   * Resolve once `done()` returns a value other than undefined; reject when the
   * process exits first or `timeoutMs` passes. The error shows the output so far.
   */
  waitFor<T>(what: string, done: () => T | undefined, timeoutMs = 15_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const finish = (err: Error | undefined, value?: T): void => {
        clearTimeout(timer);
        this.#watchers.delete(check);
        if (err) reject(err);
        else resolve(value as T);
      };
      const check = (): void => {
        const value = done();
        if (value !== undefined) finish(undefined, value);
        else if (this.exit) finish(this.#error(`exited (${JSON.stringify(this.exit)}) before ${what}`));
      };
      const timer = setTimeout(() => finish(this.#error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
      this.#watchers.add(check);
      check();
    });
  }

  /** Wait for a log line whose `msg` starts with `prefix` (and passes `match`, if given). */
  waitForLog(prefix: string, match: (log: LogLine) => boolean = () => true, timeoutMs?: number): Promise<LogLine> {
    return this.waitFor(
      `a log line "${prefix}..."`,
      () => this.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith(prefix) && match(l)),
      timeoutMs,
    );
  }

  waitForExit(timeoutMs = 15_000): Promise<Exit> {
    return this.waitFor('exit', () => this.exit, timeoutMs);
  }

  hasLog(prefix: string): boolean {
    return this.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith(prefix));
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.exit) this.child.kill(signal);
  }

  #error(message: string): Error {
    return new Error(`${message}\n--- stdout ---\n${this.stdout}\n--- stderr ---\n${this.stderr}`);
  }

  /** For teardown: SIGKILL if still running (only this child), then wait for it. */
  async kill(): Promise<void> {
    if (this.exit) return;
    this.child.kill('SIGKILL');
    await this.#exited;
  }
}

/** Spawn `node dist/cli.js ...args`; killed at teardown if still running. */
export function startCli(t: Test, args: readonly string[], cwd = ROOT): CliProcess {
  const proc = new CliProcess(args, cwd);
  t.teardown(() => proc.kill());
  return proc;
}

/** A temporary directory removed at teardown. */
export function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function writeConfig(t: Test, text: string, name = 'fulcrum.yaml'): string {
  const file = join(tempDir(t), name);
  writeFileSync(file, text);
  return file;
}

export interface ServiceYaml {
  listenPort: number;
  backendPorts: readonly number[];
  drainTimeout?: string;
  workers?: number;
}

/** A one-service config on 127.0.0.1 in the YAML syntax of config/fulcrum.yaml. */
export function serviceYaml(o: ServiceYaml): string {
  return [
    `workers: ${o.workers ?? 2}`,
    `drain_timeout: ${o.drainTimeout ?? '30s'}`,
    'log:',
    '  level: info',
    'services:',
    '  - name: echo',
    `    listen: 127.0.0.1:${o.listenPort}`,
    '    balance: roundrobin',
    '    backends:',
    ...o.backendPorts.map((p) => `      - address: 127.0.0.1:${p}`),
    '',
  ].join('\n');
}

/** A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Listen on 127.0.0.1 port 0 with `onConnection`; closed (with its sockets) at teardown. */
export function startServer(t: Test, onConnection: (socket: Socket) => void): Promise<{ server: Server; port: number }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    onConnection(socket);
  });
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve({ server, port: typeof address === 'object' && address !== null ? address.port : 0 });
    });
  });
}

/** An echo backend: echoes every byte and ends its side when the client ends (half-close). */
export function startEchoServer(t: Test): Promise<{ server: Server; port: number }> {
  return startServer(t, (socket) => socket.pipe(socket));
}

/**
 * Start `fulcrum run` on a free port and wait until it logs `listening`.
 * The port is picked by binding port 0 and closing it, so another process can
 * take it in between: on EADDRINUSE, try again with a new port (bounded).
 */
export async function startFulcrum(
  t: Test,
  config: (listenPort: number) => string,
  attempts = 5,
): Promise<{ proc: CliProcess; port: number; file: string }> {
  let last = '';
  for (let i = 0; i < attempts; i++) {
    const port = await freePort();
    const file = writeConfig(t, config(port));
    const proc = startCli(t, ['run', '-c', file]);
    try {
      await proc.waitForLog('listening');
      return { proc, port, file };
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
      await proc.kill();
      if (!proc.stderr.includes('EADDRINUSE')) break;
    }
  }
  throw new Error(`fulcrum run did not start: ${last}`);
}

/** A client socket with a byte buffer that tests read from with bounded waits. */
export class Client {
  readonly socket: Socket;
  #buffer = Buffer.alloc(0);
  #ended = false;
  #closed = false;
  readonly #watchers = new Set<() => void>();

  constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#notify();
    });
    socket.on('end', () => {
      this.#ended = true;
      this.#notify();
    });
    socket.on('error', () => {
      // Surfaces as 'close'; tests assert on closure, not on the error kind.
    });
    socket.once('close', () => {
      this.#closed = true;
      this.#notify();
    });
  }

  #notify(): void {
    for (const watcher of [...this.#watchers]) watcher();
  }

  #wait<T>(what: string, done: () => T | undefined, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const finish = (err: Error | undefined, value?: T): void => {
        clearTimeout(timer);
        this.#watchers.delete(check);
        if (err) reject(err);
        else resolve(value as T);
      };
      const check = (): void => {
        const value = done();
        if (value !== undefined) finish(undefined, value);
        else if (this.#ended || this.#closed) finish(new Error(`connection ended before ${what} (have ${this.#buffer.length} bytes)`));
      };
      const timer = setTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
      this.#watchers.add(check);
      check();
    });
  }

  /** Read exactly `n` bytes. */
  read(n: number, timeoutMs = 10_000): Promise<Buffer> {
    return this.#wait(`${n} bytes`, () => {
      if (this.#buffer.length < n) return undefined;
      const out = this.#buffer.subarray(0, n);
      this.#buffer = this.#buffer.subarray(n);
      return out;
    }, timeoutMs);
  }

  /** Read one line, without its '\n'. */
  readLine(timeoutMs = 10_000): Promise<string> {
    return this.#wait('a line', () => {
      const at = this.#buffer.indexOf(0x0a);
      if (at < 0) return undefined;
      const line = this.#buffer.subarray(0, at).toString('utf8');
      this.#buffer = this.#buffer.subarray(at + 1);
      return line;
    }, timeoutMs);
  }

  /** Wait until the peer ends or the connection closes; resolves the unread byte count. */
  async waitEnd(timeoutMs = 10_000): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for the connection to end`)), timeoutMs);
      const check = (): void => {
        if (!this.#ended && !this.#closed) return;
        clearTimeout(timer);
        this.#watchers.delete(check);
        resolve();
      };
      this.#watchers.add(check);
      check();
    });
    return this.#buffer.length;
  }
}

/** Connect to 127.0.0.1:port; the socket is destroyed at teardown. */
export function connect(t: Test, port: number, timeoutMs = 5_000): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: '127.0.0.1', port, allowHalfOpen: true });
    t.teardown(() => {
      socket.destroy();
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect to 127.0.0.1:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(new Client(socket));
    });
  });
}

/** Try to connect; resolves the errno name of the failure, or 'connected' if it succeeded. */
export async function connectOutcome(t: Test, port: number): Promise<string> {
  try {
    const client = await connect(t, port);
    client.socket.destroy();
    return 'connected';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}
