// A stand-in for systemd's notify socket: a real unix datagram socket (bound
// by a small python3 process, as Node has no unix datagram sockets) whose
// every datagram is collected here, with the CLOCK_MONOTONIC time it arrived.
// Set `socket` as NOTIFY_SOCKET of the process under test.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Test } from 'tap';
import { tempDir } from './cli.js';
import { Waiters } from './waiters.js';

const RECEIVER = `
import json, socket, sys, time
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\\0" + path[1:] if path.startswith("@") else path)
print(json.dumps({"bound": True}), flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps({"at": time.monotonic(), "data": data.decode("utf-8", "replace")}), flush=True)
`;

export interface Notification {
  /** CLOCK_MONOTONIC seconds at arrival. */
  at: number;
  /** The datagram as sent. */
  data: string;
  /** Its KEY=VALUE lines. */
  fields: Record<string, string>;
}

export class NotifyListener {
  readonly socket: string;
  readonly received: Notification[] = [];
  readonly #waiters = new Waiters();

  private constructor(socket: string) {
    this.socket = socket;
  }

  /** Bind a listener at a file in a temporary directory, or at the abstract name `abstract` ('@...'); stopped at teardown. */
  static async start(t: Test, abstract?: string): Promise<NotifyListener> {
    const listener = new NotifyListener(abstract ?? join(tempDir(t), 'notify.sock'));
    const child = spawn('python3', ['-u', '-c', RECEIVER, listener.socket], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => {
      child.kill('SIGKILL');
    });
    let bound = false;
    let partial = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const record = JSON.parse(line) as { bound?: boolean; at: number; data: string };
        if (record.bound) bound = true;
        else listener.received.push({ at: record.at, data: record.data, fields: parseFields(record.data) });
      }
      listener.#waiters.notify();
    });
    let exited = false;
    child.once('exit', () => {
      exited = true;
      listener.#waiters.notify();
    });
    await listener.#waiters.wait('the notify listener to bind', () => (bound ? true : undefined), 10_000, () =>
      exited ? 'python3 exited' : undefined,
    );
    return listener;
  }

  /** The first notification from index `from` on that passes `match`. */
  waitFor(what: string, match: (n: Notification) => boolean, from = 0, timeoutMs = 15_000): Promise<Notification> {
    return this.#waiters.wait(what, () => this.received.slice(from).find(match), timeoutMs, undefined, (message) =>
      new Error(`${message}; received: ${JSON.stringify(this.received.map((n) => n.data))}`),
    );
  }
}

function parseFields(data: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of data.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return fields;
}
