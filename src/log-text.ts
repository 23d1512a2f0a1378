// `log.format: text`: one readable line per event, made from the JSON line
// pino writes, for a terminal or journald (which adds its own time, but a
// line read on its own should still say when):
//
//   2026-12-07T16:30:00.123Z WARN  backend 127.0.0.1:5432 of db is down: ... service=db check=postgres
//
// The time, the level name, the message, then the other fields as key=value
// (strings quoted only when they hold a space, a quote or an `=`; objects as
// JSON). pid, hostname and name are left out: the same on every line.
import type { DestinationStream } from 'pino';

const LEFT_OUT = new Set(['time', 'level', 'msg', 'pid', 'hostname', 'name']);

/** One JSON log line (as pino writes it, newline included) as a text line. Non-JSON text passes unchanged. */
export function formatTextLine(json: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const level = String(record.level ?? '').toUpperCase().padEnd(5);
  const parts = [String(record.time ?? ''), level, String(record.msg ?? '')];
  for (const [key, value] of Object.entries(record)) {
    if (LEFT_OUT.has(key) || value === undefined) continue;
    parts.push(`${key}=${fieldText(key, value)}`);
  }
  return `${parts.filter((p) => p !== '').join(' ')}\n`;
}

function fieldText(key: string, value: unknown): string {
  // An error keeps its type and message on the line; its stack stays in the JSON format.
  if (key === 'err' && value !== null && typeof value === 'object') {
    const { type, message, code } = value as { type?: unknown; message?: unknown; code?: unknown };
    return quoted([type, code, message].filter((p) => p !== undefined && p !== '').join(': '));
  }
  if (typeof value === 'string') return quoted(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return JSON.stringify(value);
}

function quoted(text: string): string {
  return text === '' || /[\s"=]/.test(text) ? JSON.stringify(text) : text;
}

/** A destination that writes each of pino's JSON lines to `inner` as a text line. */
export function textDestination(inner: DestinationStream): DestinationStream {
  return { write: (line: string) => inner.write(formatTextLine(line)) };
}
