// Logs under journald: when stdout is the journal's stream (systemd sets
// JOURNAL_STREAM to its "device:inode"), each line starts with its syslog
// priority, "<3>" for an error ... "<7>" for debug, which journald strips and
// stores as the entry's PRIORITY (SyslogLevelPrefix=yes, the default). Then
// `journalctl -u fulcrum -p warning` shows warnings and worse, and errors are
// highlighted. Nothing else in the line changes (no colour is ever written).
import { fstatSync } from 'node:fs';
import type { DestinationStream } from 'pino';

/** syslog(3) priorities by pino level name. */
const PRIORITY: Readonly<Record<string, number>> = { fatal: 2, error: 3, warn: 4, info: 6, debug: 7, trace: 7 };

/** True when file descriptor `fd` is the stream systemd connected to the journal. */
export function isJournalStream(fd: number, env: NodeJS.ProcessEnv = process.env): boolean {
  const match = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (match === null) return false;
  try {
    const stat = fstatSync(fd, { bigint: true });
    return stat.dev === BigInt(match[1]!) && stat.ino === BigInt(match[2]!);
  } catch {
    return false;
  }
}

/** The "<N>" prefix for one of pino's JSON lines ("level" is its first field); info's when it names none. */
export function priorityPrefix(jsonLine: string): string {
  const level = /^\{"level":"([a-z]+)"/.exec(jsonLine)?.[1];
  return `<${(level !== undefined ? PRIORITY[level] : undefined) ?? PRIORITY.info}>`;
}

/** A destination that writes each JSON line as `format(line)` (the JSON or text form) after its priority prefix. */
export function journalDestination(inner: DestinationStream, format: (jsonLine: string) => string): DestinationStream {
  return { write: (line: string) => inner.write(priorityPrefix(line) + format(line)) };
}
