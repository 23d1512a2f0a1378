// Backend processes for the data-path tests: test/fixtures/backend.mjs run as
// a child process per backend, so its sockets and CPU are not the engine's.
// Each is killed by its PID at teardown.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { type Conn, HOST, openConn } from './traffic.js';
import { Waiters } from './waiters.js';

export const BACKEND_FIXTURE = fileURLToPath(new URL('../fixtures/backend.mjs', import.meta.url));

export type BackendMode = 'echo' | 'id' | 'reply-after-eof' | 'send-and-end' | 'reset' | 'read-later' | 'blackhole';

/** What a backend started with --report prints when one of its connections closes. */
export interface CloseReport {
  event: 'close';
  id: number;
  received: number;
  sent: number;
  /** The client's EOF arrived. */
  eof: boolean;
  /** errno name of the socket error (ECONNRESET...), or null. */
  error: string | null;
  /** sha256 (hex) of the bytes received. */
  sha256: string;
}

export interface Backend {
  readonly mode: BackendMode;
  readonly pid: number;
  readonly port: number;
  /** `127.0.0.1:port`, as the engine's stats name it. */
  readonly address: string;
  /** Close reports so far (only with --report). */
  readonly reports: CloseReport[];
  /** Resolves with the first report (past or future) that matches; rejects after timeoutMs. */
  waitForReport(match: (r: CloseReport) => boolean, timeoutMs?: number): Promise<CloseReport>;
}

class BackendProcess implements Backend {
  readonly reports: CloseReport[] = [];
  readonly #waiters = new Waiters();
  port = 0;
  stderr = '';
  exited = false;

  constructor(readonly mode: BackendMode, readonly child: ChildProcess) {}

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get address(): string {
    return `${HOST}:${this.port}`;
  }

  notify(): void {
    this.#waiters.notify();
  }

  waitForReport(match: (r: CloseReport) => boolean, timeoutMs = 5_000): Promise<CloseReport> {
    return this.#waiters.wait(
      `a close report from backend ${this.mode} :${this.port}`,
      () => this.reports.find(match),
      timeoutMs,
      () => (this.exited ? `backend ${this.mode} (pid ${this.pid}) exited` : undefined),
      (message) => new Error(`${message}; have ${JSON.stringify(this.reports)}; stderr: ${this.stderr}`),
    );
  }
}

/**
 * Start `backend.mjs <mode> ...args` and wait (bounded) for its `{"port":N}`
 * line. Killed by PID (SIGKILL) at teardown, which waits for the exit.
 */
export function startBackend(t: Test, mode: BackendMode, args: readonly string[] = [], timeoutMs = 10_000): Promise<Backend> {
  const child = spawn(process.execPath, [BACKEND_FIXTURE, mode, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const backend = new BackendProcess(mode, child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('exit', () => {
    backend.exited = true;
    backend.notify();
  });
  t.teardown(async () => {
    if (backend.exited || child.pid === undefined) return;
    process.kill(child.pid, 'SIGKILL');
    await exited;
  });

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`backend ${mode} did not print its port within ${timeoutMs} ms; stderr: ${backend.stderr}`)), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      backend.stderr += chunk;
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`backend ${mode} exited (${code ?? signal}) before listening; stderr: ${backend.stderr}`));
    });
    let partial = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const message = JSON.parse(line) as { port?: number } & Partial<CloseReport>;
        if (message.event === 'close') {
          backend.reports.push(message as CloseReport);
          backend.notify();
        } else if (typeof message.port === 'number') {
          backend.port = message.port;
          clearTimeout(timer);
          resolve(backend);
        }
      }
    });
  });
}

/** Start `count` backends of one mode; `args(i)` gives each its arguments. */
export function startBackends(t: Test, count: number, mode: BackendMode, args: (i: number) => readonly string[] = () => []): Promise<Backend[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => startBackend(t, mode, args(i))));
}

/**
 * A port on 127.0.0.1 with nothing listening: bound (port 0) and closed a
 * moment ago. Connecting there is refused unless another process takes the
 * port in between, which the ephemeral-port allocator makes unlikely.
 */
export function deadPort(): Promise<number> {
  return freePort();
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

// In-process servers, for tests where the backend's behaviour is a few lines
// of the test itself (a greeting, a refusal to read).

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
    server.listen(0, HOST, () => {
      const address = server.address();
      resolve({ server, port: typeof address === 'object' && address !== null ? address.port : 0 });
    });
  });
}

/** An echo backend: echoes every byte and ends its side when the client ends (half-close). */
export function startEchoServer(t: Test): Promise<{ server: Server; port: number }> {
  return startServer(t, (socket) => socket.pipe(socket));
}


// `id` backends greet each connection with their name, so a test learns
// which backend a connection reached from its first line.

export const ID_NAMES = ['a', 'b', 'c', 'd'];

/** `count` id backends named a, b, c... in order. */
export function startIdBackends(t: Test, count = 3): Promise<Backend[]> {
  return startBackends(t, count, 'id', (i) => ['--name', ID_NAMES[i]!]);
}

/** Open a connection (from `from`, if given) and read which backend it reached; it stays open. */
export async function land(t: Test, port: number, from?: string): Promise<{ conn: Conn; name: string }> {
  const conn = await openConn(t, port, 5_000, from);
  return { conn, name: await conn.readLine(5_000) };
}

/** Connect, read the backend's name, close. */
export async function whoAnswers(t: Test, port: number, from?: string): Promise<string> {
  const { conn, name } = await land(t, port, from);
  conn.socket.destroy();
  return name;
}
