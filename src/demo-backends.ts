// Demo backends for `npm start`: small in-process TCP servers that greet each
// connection with one banner line naming themselves, then echo what they
// receive. They make the bundled config runnable with nothing else installed.
import { createServer, type Server, type Socket } from 'node:net';
import type { Endpoint } from './config/types.js';
import { DemoBackendError } from './errors.js';

/** What a demo backend writes first on every connection. */
export function demoBanner(address: Endpoint): string {
  return `fulcrum demo backend ${address.text}\n`;
}

/** True for 127.0.0.0/8 and ::1: the only addresses the demo starts backends on. */
export function isLoopback(address: Endpoint): boolean {
  return address.family === 4 ? address.host.startsWith('127.') : address.host === '::1';
}

export interface DemoBackends {
  readonly addresses: readonly Endpoint[];
  /** Stop listening and close every connection. Idempotent. */
  close(): Promise<void>;
}

/**
 * Start one demo backend per address (duplicates by `text` share one).
 * Rejects with DemoBackendError after closing the ones already started.
 */
export async function startDemoBackends(addresses: readonly Endpoint[]): Promise<DemoBackends> {
  const unique = [...new Map(addresses.map((a) => [a.text, a])).values()];
  const started: Array<() => Promise<void>> = [];
  const closeAll = async (): Promise<void> => {
    await Promise.all(started.splice(0).map((close) => close()));
  };
  try {
    for (const address of unique) started.push(await listen(address));
  } catch (err) {
    await closeAll();
    throw err;
  }
  return { addresses: unique, close: closeAll };
}

/** Listen on `address`; resolves a function that closes the server and its sockets. */
function listen(address: Endpoint): Promise<() => Promise<void>> {
  const sockets = new Set<Socket>();
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    // A client gone mid-write is normal for a demo; do not crash the process.
    socket.on('error', () => socket.destroy());
    socket.write(demoBanner(address));
    // pipe() ends our side when the client ends its side: half-close is echoed too.
    socket.pipe(socket);
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new DemoBackendError(address, err.code ?? 'EUNKNOWN', err)));
    server.listen({ host: address.host, port: address.port, exclusive: true }, () => {
      resolve(
        () =>
          new Promise<void>((done) => {
            for (const socket of sockets) socket.destroy();
            server.close(() => done());
          }),
      );
    });
  });
}
