// Loopback ports for benchmarks: pick free ones, wait until a process listens.

import { createServer } from 'node:net';
import { readFileSync } from 'node:fs';
import { sleep } from './proc.mjs';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it,
 * close). Another process could take it before we use it; on a bench machine
 * that is rare enough, and the start of the process that uses it would fail loudly.
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** `count` distinct free ports. */
export async function freePorts(count) {
  const ports = new Set();
  for (let i = 0; ports.size < count && i < count * 20; i++) ports.add(await freePort());
  if (ports.size < count) throw new Error(`expected ${count} distinct free ports, got ${ports.size}`);
  return [...ports];
}

/**
 * True if some IPv4 TCP socket is in LISTEN state on `port` (any local address).
 * Reads /proc/net/tcp instead of connecting, so a probe never reaches the
 * server behind a proxy (iperf3 would count a stray connection as a failed test).
 */
export function isListening(port) {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const lines = readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1);
  for (const line of lines) {
    const f = line.trim().split(/\s+/);
    if (f.length > 3 && f[3] === '0A' && f[1].endsWith(`:${hexPort}`)) return true;
  }
  return false;
}

/**
 * Wait until `port` is listening. Rejects after `timeoutMs`, or at once if
 * `handle` (from startProcess) exits first; the error message says which.
 */
export async function waitForListen(port, { timeoutMs = 10000, handle } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (handle?.exited) {
      const how = handle.spawnError
        ? `failed to start: ${handle.spawnError.message}`
        : `exited (code ${handle.exitCode}, signal ${handle.signal}) before listening on 127.0.0.1:${port}`;
      throw new Error(`${handle.name} ${how}`);
    }
    if (isListening(port)) return;
    if (Date.now() >= deadline) {
      throw new Error(`${handle?.name ?? 'process'} not listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
    }
    await sleep(50);
  }
}
