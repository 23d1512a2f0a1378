// The client end of the control channel: opens a session on the server
// (HELLO role control -> SESSION) and, after a run, asks what the server
// counted (RESULTS_REQUEST -> RESULTS). The session ends when this closes.
import { connect, type Socket } from 'node:net';
import { BenchError } from '../errors.js';
import {
  FrameType,
  Role,
  decodeError,
  decodeResults,
  decodeSession,
  encodeFrame,
  encodeHello,
  takeFrame,
  type Frame,
  type ServerResults,
} from './protocol.js';

const REPLY_TIMEOUT_MS = 5000;

export class ControlChannel {
  #session = 0;
  #socket: Socket;
  #peer: string;
  #buffer: Buffer = Buffer.alloc(0);
  #waiting: ((frame: Frame | Error) => void) | undefined;
  #failure: Error | undefined;

  private constructor(socket: Socket, peer: string) {
    this.#socket = socket;
    this.#peer = peer;
  }

  /** The session id the server gave this run (data connections and datagrams carry it). */
  get session(): number {
    return this.#session;
  }

  /** Connects to the bench server at host:port and opens a session. */
  static async open(host: string, port: number, timeoutMs = 3000): Promise<ControlChannel> {
    const socket = connect({ host, port, noDelay: true });
    const channel = new ControlChannel(socket, host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);
    channel.#listen();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new BenchError(`connecting to ${host}:${port}: no answer after ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    socket.write(encodeHello(Role.control, 0, 0));
    const reply = await channel.#next();
    if (reply.type !== FrameType.session) throw new BenchError(`expected SESSION from ${host}:${port}, got frame type ${reply.type}`);
    channel.#session = decodeSession(reply.payload).session;
    return channel;
  }

  /** What the server counted for this session so far. */
  async results(): Promise<ServerResults> {
    this.#socket.write(encodeFrame(FrameType.resultsRequest));
    const reply = await this.#next();
    if (reply.type !== FrameType.results) throw new BenchError(`expected RESULTS, got frame type ${reply.type}`);
    return decodeResults(reply.payload);
  }

  close(): void {
    this.#socket.end();
    this.#socket.destroySoon();
  }

  #listen(): void {
    this.#socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#deliver();
    });
    this.#socket.on('error', (err) => this.#fail(err));
    this.#socket.on('close', () => this.#fail(new BenchError('the bench server closed the control connection')));
  }

  #deliver(): void {
    while (this.#waiting) {
      let taken;
      try {
        taken = takeFrame(this.#buffer);
      } catch (err) {
        this.#fail(new BenchError(`${this.#peer} does not speak the fulcrum bench protocol: ${(err as Error).message}`));
        return;
      }
      if (!taken) return;
      this.#buffer = taken.rest;
      const waiter = this.#waiting;
      this.#waiting = undefined;
      if (taken.frame.type === FrameType.error) {
        const { message } = decodeError(taken.frame.payload);
        waiter(new BenchError(`the server refused: ${message}`));
      } else {
        waiter(taken.frame);
      }
    }
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    const waiter = this.#waiting;
    this.#waiting = undefined;
    waiter?.(this.#failure);
  }

  #next(): Promise<Frame> {
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting = undefined;
        reject(new BenchError(`control channel: no reply from the server within ${REPLY_TIMEOUT_MS} ms`));
      }, REPLY_TIMEOUT_MS);
      this.#waiting = (value) => {
        clearTimeout(timer);
        if (value instanceof Error) reject(value);
        else resolve(value);
      };
      if (this.#failure) this.#fail(this.#failure);
      else this.#deliver();
    });
  }
}
