// One end of the upgrade socket (protocol.ts) once the sockets are handed
// over: messages both ways while the old and the new process overlap
// (session records, 'ready', the handover of VRRP, BGP and sync state).
//
// Sending never blocks the event loop: a message the peer's queue cannot take
// now (EAGAIN) waits in a FIFO retried every RETRY_MS, so order is kept and
// VRRP adverts stay on time however slowly the other process reads. Receiving
// is a poll (receive(fd, 0)) by whoever owns the channel. JS thread only.
import { loadNative } from '../engine/native.js';
import { parseMessage } from './protocol.js';

const RETRY_MS = 5;

interface Outgoing {
  text: string;
  fds: number[];
  sent?: () => void;
}

export type ChannelMessage = { type: string } & Record<string, unknown>;

export class UpgradeChannel {
  readonly #fd: number;
  readonly #queue: Outgoing[] = [];
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** The peer closed its end (or exited). */
  #ended = false;

  constructor(fd: number) {
    this.#fd = fd;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Queue `message` (and `fds`, which stay ours: the peer gets duplicates); `sent` runs once it left. */
  send(message: object, fds: number[] = [], sent?: () => void): void {
    if (this.#closed || this.#ended) return;
    this.#queue.push({ text: JSON.stringify(message), fds, ...(sent && { sent }) });
    this.#flush();
  }

  /** Messages still waiting for room in the peer's queue. */
  get pending(): number {
    return this.#queue.length;
  }

  /** The next message, undefined when none is there now; an unparsable one is skipped. Sets `ended` at end of stream. */
  receive(): { message: ChannelMessage; fds: number[] } | undefined {
    if (this.#closed || this.#ended) return undefined;
    const fdPassing = loadNative().fdPassing;
    for (;;) {
      let got: { text: string; fds: number[] } | null;
      try {
        got = fdPassing.receive(this.#fd, 0);
      } catch {
        this.#ended = true;
        return undefined;
      }
      if (got === null) return undefined;
      if (got.text === '') {
        this.#ended = true;
        for (const fd of got.fds) fdPassing.close(fd);
        return undefined;
      }
      const message = parseMessage(got.text);
      if (message !== undefined) return { message, fds: got.fds };
      for (const fd of got.fds) fdPassing.close(fd);
    }
  }

  /** Resolves once everything queued has left (or `timeoutMs` passed, or the peer is gone). */
  async drained(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.#queue.length > 0 && !this.#ended && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }

  /** Close our end (what is still queued is dropped). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#queue.length = 0;
    loadNative().fdPassing.close(this.#fd);
  }

  #flush(): void {
    const fdPassing = loadNative().fdPassing;
    while (this.#queue.length > 0 && !this.#closed) {
      const next = this.#queue[0]!;
      let sent: boolean;
      try {
        sent = fdPassing.send(this.#fd, next.text, next.fds, true);
      } catch {
        // EPIPE / ECONNRESET: the peer is gone; nothing queued can arrive.
        this.#ended = true;
        this.#queue.length = 0;
        return;
      }
      if (!sent) {
        if (this.#timer === undefined) {
          this.#timer = setTimeout(() => {
            this.#timer = undefined;
            this.#flush();
          }, RETRY_MS);
        }
        return;
      }
      this.#queue.shift();
      next.sent?.();
    }
  }
}
