// Helpers for tests that run the real CLI (`node dist/cli.js ...`) against
// real sockets on 127.0.0.1. Every process and socket they create is
// registered with t.teardown; every wait is bounded in time.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { freePort } from './backends.js';
import { Waiters } from './waiters.js';

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

/** One JSON log line (pino): `msg`, `level` (a name: info, warn...), `time` (ISO 8601) and the logged fields. */
export type LogLine = Record<string, unknown> & { msg?: string; level?: string; time?: string };

/** How the CLI is started: in `cwd` (default the repository), with at most `nofile` file descriptors. */
export interface CliOptions {
  cwd?: string;
  /** RLIMIT_NOFILE for the process (prlimit, else the shell's ulimit; both exec, so the PID is node's). */
  nofile?: number;
  /** Variables added to this process's environment (NOTIFY_SOCKET...). */
  env?: NodeJS.ProcessEnv;
}

/** The command line that runs `node dist/cli.js ...args`, under a file descriptor limit when asked. */
function cliCommand(args: readonly string[], nofile: number | undefined): [string, string[]] {
  const node = [process.execPath, CLI, ...args];
  if (nofile === undefined) return [node[0]!, node.slice(1)];
  const hasPrlimit = ['/usr/bin/prlimit', '/bin/prlimit'].some((p) => existsSync(p));
  return hasPrlimit
    ? ['prlimit', [`--nofile=${nofile}:${nofile}`, ...node]]
    : ['sh', ['-c', `ulimit -n ${nofile} && exec "$0" "$@"`, ...node]];
}

/** A running CLI process whose stdout/stderr are collected as they arrive. */
export class CliProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly logs: LogLine[] = [];
  exit: Exit | undefined;
  readonly #exited: Promise<Exit>;
  readonly #waiters = new Waiters();
  #partial = '';

  constructor(args: readonly string[], options: CliOptions = {}) {
    const [command, commandArgs] = cliCommand(args, options.nofile);
    this.child = spawn(command, commandArgs, { cwd: options.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => this.#onStdout(chunk));
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      this.#waiters.notify();
    });
    this.#exited = new Promise((resolve) => {
      // 'close' (not 'exit') so every byte of output has been read.
      this.child.once('close', (code, signal) => {
        this.exit = { code, signal };
        this.#waiters.notify();
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
    this.#waiters.notify();
  }

  /**
   * Resolve once `done()` returns a value other than undefined; reject when the
   * process exits first or `timeoutMs` passes. The error shows the output so far.
   */
  waitFor<T>(what: string, done: () => T | undefined, timeoutMs = 15_000): Promise<T> {
    const exited = (): string | undefined => (this.exit ? `exited (${JSON.stringify(this.exit)})` : undefined);
    return this.#waiters.wait(what, done, timeoutMs, exited, (message) => this.#error(message));
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
export function startCli(t: Test, args: readonly string[], options: CliOptions = {}): CliProcess {
  const proc = new CliProcess(args, options);
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

export interface StartOptions {
  attempts?: number;
  /** RLIMIT_NOFILE of the process. */
  nofile?: number;
  /** How the listen port is picked; a free TCP port by default. */
  port?: () => Promise<number>;
}

/**
 * Start `fulcrum run` on a free port and wait until it logs `listening`.
 * The port is picked by binding port 0 and closing it, so another process can
 * take it in between: on EADDRINUSE, try again with a new port (bounded).
 */
export async function startFulcrum(
  t: Test,
  config: (listenPort: number) => string,
  options: StartOptions = {},
): Promise<{ proc: CliProcess; port: number; file: string }> {
  const attempts = options.attempts ?? 5;
  let last = '';
  for (let i = 0; i < attempts; i++) {
    const port = await (options.port ?? freePort)();
    const file = writeConfig(t, config(port));
    const proc = startCli(t, ['run', '-c', file], { nofile: options.nofile });
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
