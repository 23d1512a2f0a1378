// A minimal PostgreSQL client (protocol 3.0), written from the protocol's
// documentation so the tests depend on no driver: a session that logs in
// without a password (trust), keeps the BackendKeyData its server gives it,
// and runs simple queries; and the CancelRequest a driver sends on a second
// connection to cancel that session's query (what psql's Ctrl-C does).
import { connect, type Socket } from 'node:net';
import { HOST } from './traffic.js';

/** The CancelRequest code: 1234 << 16 | 5678. */
export const CANCEL_REQUEST_CODE = 80877102;

/** How a query ended: ok, or the SQLSTATE of its ErrorResponse (57014: canceled). */
export interface QueryResult {
  ok: boolean;
  sqlstate?: string;
  message?: string;
}

export interface PgSession {
  /** BackendKeyData: the server process running this session and its secret key. */
  pid: number;
  secret: number;
  /** Runs one simple query; resolves when the server is ready again (bounded by timeoutMs). */
  query(sql: string, timeoutMs: number): Promise<QueryResult>;
  close(): void;
}

/** The 16 bytes of a CancelRequest for (pid, secret). */
export function cancelRequest(pid: number, secret: number): Buffer {
  const out = Buffer.alloc(16);
  out.writeInt32BE(16, 0);
  out.writeInt32BE(CANCEL_REQUEST_CODE, 4);
  out.writeUInt32BE(pid >>> 0, 8);
  out.writeUInt32BE(secret >>> 0, 12);
  return out;
}

/** A StartupMessage (protocol 3.0) for user and database. */
export function startupMessage(user: string, database: string): Buffer {
  const body = Buffer.concat([Buffer.from([0, 3, 0, 0]), Buffer.from(`user\0${user}\0database\0${database}\0\0`)]);
  const length = Buffer.alloc(4);
  length.writeInt32BE(body.length + 4);
  return Buffer.concat([length, body]);
}

/** Reads backend messages (type byte, int32 length, body) off a socket. */
class MessageReader {
  #buffer = Buffer.alloc(0);
  #waiting: (() => void) | undefined;
  #ended: Error | undefined;

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#wake();
    });
    socket.on('error', (err) => this.#end(err));
    socket.on('close', () => this.#end(new Error('the server closed the connection')));
  }

  #end(err: Error): void {
    this.#ended ??= err;
    this.#wake();
  }

  #wake(): void {
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.();
  }

  /** The next message, or throws when the connection ends or deadline (Date.now() ms) passes. */
  async next(deadline: number): Promise<{ type: string; body: Buffer }> {
    for (;;) {
      if (this.#buffer.length >= 5) {
        const length = this.#buffer.readInt32BE(1);
        if (this.#buffer.length >= 1 + length) {
          const message = { type: String.fromCharCode(this.#buffer[0]!), body: this.#buffer.subarray(5, 1 + length) };
          this.#buffer = this.#buffer.subarray(1 + length);
          return message;
        }
      }
      if (this.#ended) throw this.#ended;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for the server');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiting = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}

/** The fields of an ErrorResponse body: code letter -> text. */
function errorFields(body: Buffer): Map<string, string> {
  const fields = new Map<string, string>();
  let at = 0;
  while (at < body.length && body[at] !== 0) {
    const end = body.indexOf(0, at + 1);
    fields.set(String.fromCharCode(body[at]!), body.subarray(at + 1, end).toString('utf8'));
    at = end + 1;
  }
  return fields;
}

function open(port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: HOST, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect to ${port} timed out`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Logs in to the server (or proxy) on port as user, trust authentication; bounded by timeoutMs. */
export async function pgSession(port: number, user: string, database: string, timeoutMs = 5000): Promise<PgSession> {
  const socket = await open(port, timeoutMs);
  socket.setNoDelay(true);
  const reader = new MessageReader(socket);
  const deadline = Date.now() + timeoutMs;
  socket.write(startupMessage(user, database));
  let pid = -1;
  let secret = -1;
  try {
    for (;;) {
      const { type, body } = await reader.next(deadline);
      if (type === 'R' && body.readInt32BE(0) !== 0) throw new Error(`the server asks for authentication ${body.readInt32BE(0)} (expected trust)`);
      if (type === 'E') throw new Error(`login refused: ${errorFields(body).get('M')}`);
      if (type === 'K') {
        pid = body.readUInt32BE(0);
        secret = body.readUInt32BE(4);
      }
      if (type === 'Z') break;
    }
  } catch (err) {
    socket.destroy();
    throw err;
  }
  if (pid < 0) {
    socket.destroy();
    throw new Error('no BackendKeyData before ReadyForQuery');
  }
  return {
    pid,
    secret,
    async query(sql: string, queryTimeoutMs: number): Promise<QueryResult> {
      const text = Buffer.from(`${sql}\0`);
      const header = Buffer.alloc(5);
      header.write('Q', 0);
      header.writeInt32BE(text.length + 4, 1);
      socket.write(Buffer.concat([header, text]));
      const queryDeadline = Date.now() + queryTimeoutMs;
      let result: QueryResult = { ok: true };
      for (;;) {
        const { type, body } = await reader.next(queryDeadline);
        if (type === 'E') {
          const fields = errorFields(body);
          result = { ok: false, sqlstate: fields.get('C'), message: fields.get('M') };
        }
        if (type === 'Z') return result;
      }
    },
    close(): void {
      // Terminate, then close: the server ends the session at once.
      socket.end(Buffer.from([0x58, 0, 0, 0, 4]));
      socket.destroy();
    },
  };
}

/**
 * Sends a CancelRequest for (pid, secret) on a new connection to port, as
 * libpq does: write the 16 bytes, then wait for the server to close the
 * connection (it never replies). Bounded by timeoutMs; resolves either way.
 */
export async function sendCancel(port: number, pid: number, secret: number, timeoutMs = 3000): Promise<void> {
  const socket = await open(port, timeoutMs);
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      socket.destroy();
      resolve();
    }, timeoutMs);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.on('data', () => undefined);
    socket.write(cancelRequest(pid, secret));
  });
}
