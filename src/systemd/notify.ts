// The systemd notify protocol (sd_notify(3)): one datagram of KEY=VALUE lines
// to the unix socket in $NOTIFY_SOCKET, which systemd sets for Type=notify
// services. No libsystemd: the datagram is sent by the addon (Node's dgram has
// no unix datagram sockets), everything else is here.
import { constants } from 'node:os';
import { loadNative } from '../engine/native.js';

/** Why a notification did not reach systemd: `code` is the errno name (ENOENT, ECONNREFUSED, EINVAL...). */
export class NotifyError extends Error {
  readonly code: string;
  readonly socket: string;
  constructor(code: string, socket: string) {
    super(`cannot notify systemd at ${socket}: ${code}`);
    this.name = 'NotifyError';
    this.code = code;
    this.socket = socket;
  }
}

/** The notify socket systemd gave this process, or undefined when not run as a Type=notify service. */
export function notifySocket(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const socket = env.NOTIFY_SOCKET;
  return socket === undefined || socket === '' ? undefined : socket;
}

/**
 * The datagram for `fields`: one `KEY=VALUE` line each, in order. Keys are
 * upper-case letters, digits and '_' (the protocol's); a value is one line
 * (a newline in it would start a field nobody meant), so newlines become spaces.
 */
export function notifyMessage(fields: Record<string, string | number>): string {
  const lines: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    if (!/^[A-Z][A-Z0-9_]*$/.test(key)) throw new TypeError(`sd_notify field name '${key}' is not KEY (A-Z, 0-9, _)`);
    lines.push(`${key}=${String(value).replace(/[\r\n]+/g, ' ')}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Send `fields` to systemd (READY: 1, STATUS: '...', MAINPID: pid, ...).
 * Returns true when the datagram was sent; false when NOTIFY_SOCKET is unset
 * (not under systemd: a no-op) or the send failed, which `onError` hears
 * about (the socket gone, a path that is not absolute...). Never throws for a
 * failed send.
 */
export function sdNotify(
  fields: Record<string, string | number>,
  onError?: (error: NotifyError) => void,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  const socket = notifySocket(env);
  if (socket === undefined) return false;
  const result = loadNative().sdNotify(socket, notifyMessage(fields));
  if (result === 0) return true;
  onError?.(new NotifyError(errnoName(-result), socket));
  return false;
}

function errnoName(errno: number): string {
  const entry = Object.entries(constants.errno).find(([, value]) => value === errno);
  return entry?.[0] ?? `E${errno}`;
}
