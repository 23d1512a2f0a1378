// The connection log as a test reads it: records written to a file in a temp
// dir (removed at teardown), parsed as JSON lines, waited for with a bound.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { waitUntil } from './traffic.js';

/** One JSON record (README, "Connection log"). */
export interface LogRecord {
  time: string;
  start: string;
  type: 'tcp' | 'udp';
  event: 'end' | 'interim';
  service: string;
  listen: string;
  client: string;
  proxy_client?: string;
  backend: string | null;
  termination?: string;
  queue_ms?: number;
  connect_ms?: number;
  attempts?: number;
  duration_ms: number;
  bytes_in: number;
  bytes_out: number;
  datagrams_in?: number;
  datagrams_out?: number;
  worker: number;
}

export interface RecordFile {
  file: string;
  /** The `connection_log:` keys that write to it (for ServiceOptions.connectionLog). */
  keys: string[];
  /** Every record written so far. */
  records(): LogRecord[];
  /** Waits (bounded) until a record matches, and returns it. */
  waitFor(what: string, match: (r: LogRecord) => boolean, timeoutMs?: number): Promise<LogRecord>;
}

export function recordFile(t: Test, extraKeys: readonly string[] = []): RecordFile {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-connlog-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'connections.log');
  const records = (): LogRecord[] => {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return [];
    }
    return text.split('\n').filter((line) => line.length > 0).map((line) => JSON.parse(line) as LogRecord);
  };
  return {
    file,
    keys: [`output: ${file}`, ...extraKeys],
    records,
    async waitFor(what, match, timeoutMs = 5_000) {
      await waitUntil(what, () => records().some(match), timeoutMs);
      return records().find(match)!;
    },
  };
}
