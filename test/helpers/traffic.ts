// Client-side traffic for the data-path tests: deterministic pseudo-random
// streams that can be regenerated instead of stored, client connections with
// bounded waits, and a byte-exact echo check with backpressure.
//
// Every socket made here is destroyed at teardown; every wait has a timeout.
import { createCipheriv, createHash, type Cipher } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import type { Test } from 'tap';
import { Waiters } from './waiters.js';

export const HOST = '127.0.0.1';
export const KiB = 1024;
export const MiB = 1024 * KiB;

const ZEROS = Buffer.alloc(1 * MiB);

/**
 * The keystream of `seed`: AES-128-CTR, key sha256(seed)[0..16), zero IV,
 * over zero bytes. The same derivation as test/fixtures/backend.mjs, so a
 * test can check bytes a backend generated. Successive next() calls continue
 * the stream, whatever the call sizes.
 */
export class KeyStream {
  readonly #cipher: Cipher;

  constructor(seed: string) {
    const key = createHash('sha256').update(seed).digest().subarray(0, 16);
    this.#cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  }

  next(n: number): Buffer {
    if (n <= ZEROS.length) return this.#cipher.update(ZEROS.subarray(0, n));
    const parts: Buffer[] = [];
    for (let left = n; left > 0; left -= ZEROS.length) parts.push(this.#cipher.update(ZEROS.subarray(0, Math.min(left, ZEROS.length))));
    return Buffer.concat(parts, n);
  }
}

/** The first `n` bytes of the keystream of `seed`. */
export function keystream(seed: string, n: number): Buffer {
  return new KeyStream(seed).next(n);
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Index of the first byte where a and b differ (they differ somewhere). */
function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

/** Resolves when `check()` returns true; rejects after `timeoutMs` naming `what`. Polls every `intervalMs`. */
export async function waitUntil(what: string, check: () => boolean, timeoutMs = 5_000, intervalMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(intervalMs);
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A client connection that records everything a test asserts on: bytes
 * received (buffered until read), the peer's EOF, the socket error code, and
 * when each happened. Half-open aware: our side stays writable after the
 * peer's EOF.
 */
export class Conn {
  readonly socket: Socket;
  readonly openedAt = Date.now();
  /** When the peer's EOF (FIN) arrived. */
  endedAt: number | undefined;
  /** When the socket closed (after an EOF both ways, an error, or destroy()). */
  closedAt: number | undefined;
  /** errno name of the socket error, if one happened (ECONNRESET...). */
  error: string | undefined;
  /** Bytes received so far, read or not. */
  receivedTotal = 0;
  #chunks: Buffer[] = [];
  #buffered = 0;
  readonly #waiters = new Waiters();
  readonly closed: Promise<void>;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      this.receivedTotal += chunk.length;
      this.#waiters.notify();
    });
    socket.on('end', () => {
      this.endedAt = Date.now();
      this.#waiters.notify();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.error ??= err.code ?? err.message;
      this.#waiters.notify();
    });
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.closedAt = Date.now();
        this.#waiters.notify();
        resolve();
      }),
    );
  }

  get buffered(): number {
    return this.#buffered;
  }

  #take(n: number): Buffer {
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#buffered);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#buffered = rest.length;
    return out;
  }

  /** Resolves when done() returns a value; rejects on timeout, or when the connection ends first. */
  #wait<T>(what: string, done: () => T | undefined, timeoutMs: number): Promise<T> {
    const ended = (): string | undefined =>
      this.endedAt !== undefined || this.closedAt !== undefined ? `connection ${this.describe()}` : undefined;
    return this.#waiters.wait(what, done, timeoutMs, ended, (message) => new Error(`${message} (have ${this.#buffered} bytes)`));
  }

  /** Read exactly n bytes. */
  read(n: number, timeoutMs = 10_000): Promise<Buffer> {
    return this.#wait(`${n} bytes`, () => (this.#buffered >= n ? this.#take(n) : undefined), timeoutMs);
  }

  /** Read one line, without its '\n'. */
  readLine(timeoutMs = 10_000): Promise<string> {
    return this.#wait('a line', () => {
      for (let i = 0, seen = 0; i < this.#chunks.length; seen += this.#chunks[i]!.length, i++) {
        const at = this.#chunks[i]!.indexOf(0x0a);
        if (at >= 0) return this.#take(seen + at + 1).subarray(0, seen + at).toString('utf8');
      }
      return undefined;
    }, timeoutMs);
  }

  /** Wait until the socket is closed (by either side); rejects after timeoutMs. */
  waitClosed(timeoutMs = 10_000): Promise<void> {
    return this.#settle('the connection to close', () => this.closedAt !== undefined, timeoutMs);
  }

  /** When the peer ended or reset the connection (its EOF, or the close that an error causes). */
  get peerClosedAt(): number | undefined {
    return this.endedAt ?? (this.error !== undefined ? this.closedAt : undefined);
  }

  /** Wait until the peer's EOF or the socket closes; rejects after timeoutMs. */
  waitEnd(timeoutMs = 10_000): Promise<void> {
    return this.#settle('EOF', () => this.endedAt !== undefined || this.closedAt !== undefined, timeoutMs);
  }

  #settle(what: string, done: () => boolean, timeoutMs: number): Promise<void> {
    return this.#waiters.wait(what, () => (done() ? true : undefined), timeoutMs).then(() => undefined);
  }

  /** Write and wait until the bytes are handed to the kernel. */
  write(data: Buffer | string): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (err) => (err ? reject(err) : resolve())));
  }

  describe(): string {
    if (this.error !== undefined) return `failed with ${this.error}`;
    if (this.endedAt !== undefined) return 'ended (EOF)';
    if (this.closedAt !== undefined) return 'closed';
    return 'open';
  }
}

/** Connect to 127.0.0.1:port (half-open allowed); the socket is destroyed at teardown. */
/** `from`: the client's own address (any 127.0.0.N is loopback), for tests where clients must differ. */
export function openConn(t: Test, port: number, timeoutMs = 5_000, from?: string): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: HOST, port, allowHalfOpen: true, noDelay: true, localAddress: from });
    t.teardown(() => {
      socket.destroy();
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect to ${HOST}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(err);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(new Conn(socket));
    });
  });
}

/** Try to connect; resolves the errno name of the failure, or 'connected' if it succeeded. */
export async function connectOutcome(t: Test, port: number): Promise<string> {
  try {
    const conn = await openConn(t, port);
    conn.socket.destroy();
    return 'connected';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

/** Send one line/bytes and read the same bytes back: proof that a relay works end to end. */
export async function pingEcho(conn: Conn, payload = 'ping\n', timeoutMs = 5_000): Promise<void> {
  const bytes = Buffer.from(payload);
  await conn.write(bytes);
  const back = await conn.read(bytes.length, timeoutMs);
  if (!back.equals(bytes)) throw new Error(`echo returned ${JSON.stringify(back.toString())}, expected ${JSON.stringify(payload)}`);
}

export interface EchoStreamResult {
  sent: number;
  received: number;
}

/**
 * Send `total` bytes of the keystream of `seed` to an echo service at `port`,
 * then end; check byte for byte, chunk by chunk as they arrive, that exactly
 * those bytes come back, followed by EOF. Memory stays bounded: at most one
 * `chunkSize` buffer waits in user space (write() backpressure is obeyed) and
 * received chunks are compared against the regenerated stream and dropped.
 * Rejects with the offset of the first wrong byte, or on a short stream,
 * an error, or `timeoutMs`.
 */
export function echoStream(t: Test, port: number, seed: string, total: number, timeoutMs: number, chunkSize = 256 * KiB): Promise<EchoStreamResult> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: HOST, port, allowHalfOpen: true });
    t.teardown(() => {
      socket.destroy();
    });
    const tx = new KeyStream(seed);
    const rx = new KeyStream(seed);
    let sent = 0;
    let received = 0;
    let eof = false;
    let failure: Error | undefined;
    const fail = (message: string): void => {
      failure ??= new Error(`${seed}: ${message} (sent ${sent}, received ${received} of ${total})`);
      socket.destroy();
    };
    const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);

    const pump = (): void => {
      while (sent < total) {
        const n = Math.min(chunkSize, total - sent);
        const ok = socket.write(tx.next(n));
        sent += n;
        if (!ok) {
          socket.once('drain', pump);
          return;
        }
      }
      socket.end();
    };
    socket.once('connect', pump);
    socket.on('data', (chunk: Buffer) => {
      if (received + chunk.length > total) return fail(`got ${received + chunk.length - total} bytes more than were sent`);
      const expected = rx.next(chunk.length);
      if (!chunk.equals(expected)) return fail(`wrong byte at offset ${received + firstDifference(chunk, expected)}`);
      received += chunk.length;
    });
    socket.on('end', () => {
      eof = true;
    });
    socket.on('error', (err: NodeJS.ErrnoException) => fail(`socket error ${err.code ?? err.message}`));
    socket.once('close', () => {
      clearTimeout(timer);
      if (failure === undefined && !eof) failure = new Error(`${seed}: closed without EOF (received ${received} of ${total})`);
      if (failure === undefined && received !== total) failure = new Error(`${seed}: EOF after ${received} of ${total} bytes`);
      if (failure) reject(failure);
      else resolve({ sent, received });
    });
  });
}

/** Run `task(i)` for i in [0, count) with at most `limit` running at once. Rejects on the first failure. */
export async function runBounded(count: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, lane));
}
