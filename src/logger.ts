// The process logger: pino JSON lines on stdout, written synchronously so log
// lines and human output (the demo's instructions) keep their order and
// nothing is lost when the process exits right after logging. Levels are
// written by name ("level":"warn") and times in ISO 8601 UTC
// ("time":"2026-12-07T16:30:00.123Z"): readable in a terminal and in
// journald, and still one JSON object per line for log shippers.
// `log.format: text` writes one readable line per event instead (log-text.ts).
// When stdout is journald's stream, each line starts with its syslog priority
// ("<4>" for warn: src/systemd/journal.ts), so journald stores its level.
import { pino, type DestinationStream, type Logger } from 'pino';
import { SCHEMA_ENUMS } from './config/raw-types.js';
import { formatTextLine, textDestination } from './log-text.js';
import { isJournalStream, journalDestination } from './systemd/journal.js';

/** The levels `log.level` and `--log-level` accept, most severe first (the schema's list). */
export const LOG_LEVELS = SCHEMA_ENUMS['log.level'];
export type LogLevel = (typeof LOG_LEVELS)[number];
/** `log.format`: json (default) or text. */
export type LogFormat = (typeof SCHEMA_ENUMS)['log.format'][number];
export type { Logger };

export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

/**
 * Build the logger. `destination` defaults to stdout (fd 1); tests may pass
 * another pino destination. Nothing Fulcrum logs carries credentials today;
 * when secrets arrive (admin tokens, health-check passwords) list their paths
 * in pino's `redact` option here, in one place, and never log a config object whole.
 */
export function createLogger(level: LogLevel, destination?: DestinationStream, format: LogFormat = 'json'): Logger {
  let stream: DestinationStream;
  if (destination === undefined && isJournalStream(1)) {
    stream = journalDestination(pino.destination({ dest: 1, sync: true }), format === 'text' ? formatTextLine : (line) => line);
  } else {
    const out = destination ?? pino.destination({ dest: 1, sync: true });
    stream = format === 'text' ? textDestination(out) : out;
  }
  return pino(
    {
      name: 'fulcrum',
      level,
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    stream,
  );
}
