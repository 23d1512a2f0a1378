// UDP test helpers: backend processes (test/fixtures/udp-backend.mjs), client
// sockets that record every datagram they receive and who sent it, and a
// one-service protocol: udp config written as a user would.
import { spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { parseConfig } from '../../src/config/load.js';
import type { FulcrumConfig } from '../../src/config/types.js';
import { Engine, type EngineEvent } from '../../src/engine/engine.js';
import type { ServiceStats } from '../../src/engine/stats.js';
import { startFulcrum } from './cli.js';
import { HOST } from './traffic.js';
import { Waiters } from './waiters.js';

export const UDP_BACKEND_FIXTURE = fileURLToPath(new URL('../fixtures/udp-backend.mjs', import.meta.url));
export const UDP_SERVICE = 'game';

export interface UdpBackend {
  readonly port: number;
  readonly pid: number;
  /** `127.0.0.1:port`, as the engine's stats name it. */
  readonly address: string;
  /** SIGKILL and wait for the exit (also done at teardown). */
  kill(): Promise<void>;
}

/** Start `udp-backend.mjs <mode> ...args`; killed by PID at teardown. */
export function startUdpBackend(t: Test, mode: 'echo' | 'id', args: readonly string[] = [], timeoutMs = 10_000): Promise<UdpBackend> {
  const child = spawn(process.execPath, [UDP_BACKEND_FIXTURE, mode, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let exited = false;
  let stderr = '';
  const exit = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true;
    resolve();
  }));
  const kill = async (): Promise<void> => {
    if (!exited && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    await exit;
  };
  t.teardown(kill);
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`udp backend did not print its port; stderr: ${stderr}`)), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`udp backend exited (${code}) before binding; stderr: ${stderr}`));
    });
    child.stdout.setEncoding('utf8').once('data', (line: string) => {
      clearTimeout(timer);
      const port = (JSON.parse(line.split('\n')[0]!) as { port: number }).port;
      resolve({ port, pid: child.pid ?? -1, address: `${HOST}:${port}`, kill });
    });
  });
}

export interface Datagram {
  data: Buffer;
  address: string;
  port: number;
}

/** A client socket bound to 127.0.0.1 (or `bindHost`) that keeps every datagram it receives. */
export class UdpClient {
  readonly socket: Socket;
  readonly received: Datagram[] = [];
  readonly #waiters = new Waiters();

  constructor(socket: Socket) {
    this.socket = socket;
    socket.on('message', (data, rinfo) => {
      this.received.push({ data, address: rinfo.address, port: rinfo.port });
      this.#waiters.notify();
    });
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(data: Buffer | string, port: number, host = HOST): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(data, port, host, (err) => (err ? reject(err) : resolve())));
  }

  /** Resolves once `count` datagrams in all have arrived; rejects after timeoutMs. */
  waitFor(count: number, timeoutMs = 5_000): Promise<Datagram[]> {
    return this.#waiters.wait(`${count} datagrams on client :${this.port} (have ${this.received.length})`, () =>
      this.received.length >= count ? this.received : undefined, timeoutMs);
  }

  /** Sends `data` until a new datagram arrives (at most `tries` times, `intervalMs` apart); resolves with it. */
  async request(data: Buffer | string, port: number, host = HOST, tries = 20, intervalMs = 100): Promise<Datagram> {
    const before = this.received.length;
    for (let i = 0; i < tries; i++) {
      await this.send(data, port, host);
      try {
        const got = await this.waitFor(before + 1, intervalMs);
        return got[before]!;
      } catch {
        // lost (a backend that just died): send again
      }
    }
    throw new Error(`no reply on client :${this.port} after ${tries} tries`);
  }
}

/** Open a client; closed at teardown. */
export function udpClient(t: Test, bindHost = HOST): Promise<UdpClient> {
  const socket = createSocket({ type: bindHost.includes(':') ? 'udp6' : 'udp4', recvBufferSize: 1 << 20 });
  t.teardown(() => new Promise<void>((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve();
    }
  }));
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, bindHost, () => resolve(new UdpClient(socket)));
  });
}

/** A UDP port on 127.0.0.1 that was free a moment ago. */
export function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, HOST, () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

export interface UdpServiceOptions {
  backends: readonly number[];
  /** More service keys, one YAML line each (`max_flows: 4`, `udp: {responses: 1}`). */
  keys?: readonly string[];
  /** listen host; default 127.0.0.1. */
  host?: string;
  /** The `connection_log:` keys, one YAML line each; off when absent (records would go to the test's stdout). */
  connectionLog?: readonly string[];
}

export function udpServiceYaml(port: number, o: UdpServiceOptions, workers: number): string {
  const lines = [
    `workers: ${workers}`,
    'log:',
    '  level: warn',
    'connection_log:',
    ...(o.connectionLog ?? ['output: off']).map((line) => `  ${line}`),
    'services:',
    `  - name: ${UDP_SERVICE}`,
    '    protocol: udp',
    `    listen: "${o.host ?? HOST}:${port}"`,
    ...(o.keys ?? []).map((key) => `    ${key}`),
    '    backends:',
    ...o.backends.map((p) => `      - address: ${HOST}:${p}`),
  ];
  return `${lines.join('\n')}\n`;
}

export interface RunningUdpEngine {
  engine: Engine;
  port: number;
  events: EngineEvent[];
  config: FulcrumConfig;
  service(): ServiceStats;
}

/** An engine in this process with one protocol: udp service on a free port; stopped at teardown. */
export async function startUdpService(t: Test, o: UdpServiceOptions, workers = 2, attempts = 5): Promise<RunningUdpEngine> {
  const engine = Engine.start({ workers });
  const events: EngineEvent[] = [];
  engine.on('event', (event: EngineEvent) => events.push(event));
  t.teardown(() => engine.stop());
  for (let i = 1; ; i++) {
    const port = await freeUdpPort();
    const config = parseConfig(udpServiceYaml(port, o, workers), 'test-udp.yaml');
    try {
      engine.apply(config);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' && i < attempts) continue;
      throw err;
    }
    await engine.whenApplied();
    const service = (): ServiceStats => engine.stats().services.find((s) => s.name === UDP_SERVICE)!;
    return { engine, port, events, config, service };
  }
}

/** `fulcrum run` (a real process) with one protocol: udp service on a free UDP port, logging at info; `nofile`: its file descriptor limit. */
export function startUdpFulcrum(t: Test, backendPort: number, keys: readonly string[], nofile?: number) {
  const yaml = (port: number): string => udpServiceYaml(port, { backends: [backendPort], keys }, 2).replace('level: warn', 'level: info');
  return startFulcrum(t, yaml, { nofile, port: freeUdpPort });
}
