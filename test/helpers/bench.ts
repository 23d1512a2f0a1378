// Helpers for the bench harness tests: an in-process native bench server on
// 127.0.0.1 (port 0), closed at teardown, and a bounded raw TCP exchange.
import { connect } from 'node:net';
import type { Test } from 'tap';
import type { RunOptions } from '../../src/bench/report.js';
import { loadNative, type NativeBenchServer } from '../../src/engine/native.js';

export function startBenchServer(t: Test, threads = 2): NativeBenchServer {
  const server = new (loadNative().bench.Server)({ host: '127.0.0.1', port: 0, threads });
  t.teardown(() => server.close());
  return server;
}

/** Short runs: tests check counting, not speed. */
export function runOptions(overrides: Partial<RunOptions> = {}): RunOptions {
  return {
    durationS: 0.5,
    intervalS: 0.25,
    parallel: 1,
    direction: 'send',
    concurrency: 4,
    messageSize: 64,
    flows: 1,
    rate: 0,
    threads: 0,
    ...overrides,
  };
}

/**
 * Sends `bytes` on a new connection to 127.0.0.1:port and collects what comes
 * back until the server closes, `stopAfter` bytes have come, or 5 s pass.
 * Resolves `{ reply, closed }` (closed: by the server).
 */
export function rawExchange(port: number, bytes: Buffer, stopAfter = Infinity): Promise<{ reply: Buffer; closed: boolean; error?: string }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let error: string | undefined;
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ reply: Buffer.concat(chunks), closed: false, error });
    }, 5000);
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (d) => {
      chunks.push(d);
      if (Buffer.concat(chunks).length >= stopAfter) {
        clearTimeout(timer);
        socket.destroy();
        resolve({ reply: Buffer.concat(chunks), closed: false, error });
      }
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code;
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ reply: Buffer.concat(chunks), closed: true, error });
    });
  });
}
