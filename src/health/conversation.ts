// One health check's TCP conversation: connect, write, read until a parser
// is satisfied, all under one hard deadline for the whole check. Whatever
// happens (pass, failure, timeout, a parser throwing), close() destroys the
// socket: a check never leaves a socket open.
import { connect, type Socket } from 'node:net';
import { CheckFailure } from '../errors.js';

/** Parses a reply from the front of `buffer`: the value and the bytes it used, or undefined while incomplete. */
export type ReplyParser<T> = (buffer: Buffer) => { value: T; used: number } | undefined;

/** Bytes buffered for one reply before the check gives up: health replies are small. */
const MAX_BUFFERED = 1 << 20;

export class Conversation {
  readonly #socket: Socket;
  #buffer: Buffer = Buffer.alloc(0);
  #failure: CheckFailure | undefined;
  #ended = false;
  #wake: (() => void) | undefined;
  #stage = 'connecting';
  readonly #timer: NodeJS.Timeout;

  private constructor(socket: Socket, timeoutMs: number) {
    this.#socket = socket;
    this.#timer = setTimeout(() => this.#fail(new CheckFailure(`timeout after ${timeoutMs} ms ${this.#stage}`)), timeoutMs);
    socket.on('connect', () => this.#wakeUp());
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
      if (this.#buffer.length > MAX_BUFFERED) this.#fail(new CheckFailure(`reply larger than ${MAX_BUFFERED} bytes ${this.#stage}`));
      this.#wakeUp();
    });
    socket.on('end', () => {
      this.#ended = true;
      this.#wakeUp();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => this.#fail(new CheckFailure(`${err.code ?? err.message} ${this.#stage}`)));
    socket.on('close', () => {
      this.#ended = true;
      this.#wakeUp();
    });
  }

  /** Connect to host:port; the deadline (timeoutMs) covers the connect and everything after it until close(). */
  static async open(host: string, port: number, timeoutMs: number): Promise<Conversation> {
    const socket = connect({ host, port, noDelay: true });
    const conversation = new Conversation(socket, timeoutMs);
    try {
      await conversation.#until(() => !socket.connecting);
    } catch (err) {
      conversation.close();
      throw err;
    }
    conversation.#stage = 'after connect';
    return conversation;
  }

  /** What the check is doing, for the timeout's message ("waiting for the greeting"). */
  set stage(stage: string) {
    this.#stage = stage;
  }

  write(data: Buffer | string): void {
    if (this.#failure) throw this.#failure;
    this.#socket.write(data);
  }

  /** Wait until `parse` finds a whole reply; fails on close, error or the deadline. */
  async read<T>(parse: ReplyParser<T>): Promise<T> {
    let parsed: { value: T; used: number } | undefined;
    await this.#until(() => {
      parsed = parse(this.#buffer);
      if (parsed !== undefined) return true;
      if (this.#ended) throw new CheckFailure(this.#buffer.length === 0 ? `connection closed ${this.#stage}` : `connection closed ${this.#stage} after ${this.#buffer.length} bytes of an incomplete reply`);
      return false;
    });
    this.#buffer = this.#buffer.subarray(parsed!.used);
    return parsed!.value;
  }

  /** Everything received so far (for send_expect's "got ..." detail). */
  get received(): Buffer {
    return this.#buffer;
  }

  /** Wait until the peer closes (or the deadline); the received bytes stay available. */
  async untilClosed(): Promise<void> {
    await this.#until(() => this.#ended);
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#socket.destroy();
    this.#ended = true;
    this.#wakeUp();
  }

  async #until(done: () => boolean): Promise<void> {
    for (;;) {
      if (this.#failure) throw this.#failure;
      if (done()) return;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }

  #fail(failure: CheckFailure): void {
    if (this.#failure) return;
    this.#failure = failure;
    this.#socket.destroy();
    this.#wakeUp();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/** Open a conversation, run `talk`, and always close the socket. */
export async function converse<T>(host: string, port: number, timeoutMs: number, talk: (c: Conversation) => Promise<T>): Promise<T> {
  const conversation = await Conversation.open(host, port, timeoutMs);
  try {
    return await talk(conversation);
  } finally {
    conversation.close();
  }
}
