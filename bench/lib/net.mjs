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

/** `10.1.2.3` as /proc/net/tcp writes it (the address in host byte order on little-endian: `0302010A`). */
function procNetAddress(addr) {
  return addr.split('.').map((n) => Number(n).toString(16).toUpperCase().padStart(2, '0')).reverse().join('');
}

/**
 * True if some IPv4 TCP socket is in LISTEN state on `port` (any local
 * address, or only `host` when given) in the network namespace of process
 * `pid` (this one's by default). Reads /proc/PID/net/tcp instead of
 * connecting, so a probe never reaches the server behind a proxy (iperf3
 * would count a stray connection as a failed test).
 */
export function isListening(port, { pid, host } = {}) {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const want = host ? `${procNetAddress(host)}:${hexPort}` : null;
  let text;
  try {
    text = readFileSync(`/proc/${pid ?? 'self'}/net/tcp`, 'utf8');
  } catch {
    return false; // the process is gone (waitForListen says so)
  }
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 3 && f[3] === '0A' && (want ? f[1] === want : f[1].endsWith(`:${hexPort}`))) return true;
  }
  return false;
}

/**
 * Wait until `port` is listening. Rejects after `timeoutMs`, or at once if
 * `handle` (from startProcess) exits first; the error message says which.
 * `host`: the listen address, which also says to look in `handle`'s network
 * namespace (a process started with `netns`) rather than this one's.
 */
export async function waitForListen(port, { timeoutMs = 10000, handle, host } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (handle?.exited) {
      const how = handle.spawnError
        ? `failed to start: ${handle.spawnError.message}`
        : `exited (code ${handle.exitCode}, signal ${handle.signal}) before listening on ${host ?? '127.0.0.1'}:${port}`;
      throw new Error(`${handle.name} ${how}`);
    }
    if (isListening(port, host ? { pid: handle?.pid, host } : {})) return;
    if (Date.now() >= deadline) {
      throw new Error(`${handle?.name ?? 'process'} not listening on ${host ?? '127.0.0.1'}:${port} after ${timeoutMs} ms`);
    }
    await sleep(50);
  }
}
