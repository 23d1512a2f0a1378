// The `connection_log:` section: where each connection's record goes
// (stdout, a file, syslog over a unix socket or UDP, or nowhere), its format,
// sampling, a per-second cap and interim records. What the schema cannot
// check is checked here: the interval's duration and the syslog address.
import { isIP } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import { DURATION_BOUNDS, type RawConnectionLog } from './raw-types.js';
import { parseDuration } from './duration.js';
import type { ConfigIssue } from '../errors.js';
import type { YamlSource } from './source.js';

/** RFC 5424 section 6.2.1's facility numbers, by the names the schema lists. */
const FACILITIES: Readonly<Record<RawConnectionLog['syslog']['facility'], number>> = {
  kern: 0, user: 1, mail: 2, daemon: 3, auth: 4, syslog: 5, lpr: 6, news: 7, uucp: 8, cron: 9,
  authpriv: 10, ftp: 11, local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23,
};

/** The connection log as the engine takes it (engine.configureConnectionLog). */
export interface ConnectionLogConfig {
  output: 'off' | 'stdout' | 'file' | 'syslog';
  /** output file: the file; output syslog over a unix socket: its path. */
  path?: string;
  /** output syslog over UDP: a numeric IP address and port. */
  syslogHost?: string;
  syslogPort?: number;
  format: 'json' | 'text';
  sample: number;
  maxPerSecond: number;
  /** Interim records of open TCP connections this often; 0: none. */
  intervalMs: number;
  facility: number;
  tag: string;
}

/** The default when a config has no `connection_log:` (the engine's own tests). */
export const DEFAULT_CONNECTION_LOG: ConnectionLogConfig = {
  output: 'stdout', format: 'json', sample: 1, maxPerSecond: 0, intervalMs: 0, facility: FACILITIES.local0, tag: 'fulcrum',
};

const HOST_PORT = /^\[?([0-9A-Fa-f:.]+)\]?:(\d{1,5})$/;

/** Issues in `connection_log` (values of the wrong type were reported by the schema). */
export function connectionLogIssues(section: Record<string, unknown>, source: YamlSource): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const at = ['connection_log'];
  if (section.interval !== undefined) {
    const parsed = parseDuration(section.interval, 'connection_log.interval', DURATION_BOUNDS['connection_log.interval'].maxMs, { zero: 'off' });
    if (!parsed.ok) issues.push(source.issue([...at, 'interval'], parsed.message));
    else if (parsed.ms > 0 && parsed.ms < 1000) issues.push(source.issue([...at, 'interval'], `connection_log.interval ${JSON.stringify(section.interval)} is too short: expected 0 (off) or at least 1s`));
  }
  const syslog = section.syslog;
  if (section.output === 'syslog' && typeof syslog === 'object' && syslog !== null) {
    const address = (syslog as Record<string, unknown>).address;
    if (typeof address === 'string' && !address.startsWith('/') && syslogUdp(address) === undefined) {
      issues.push(source.issue([...at, 'syslog', 'address'], `bad syslog address ${JSON.stringify(address)}: expected a unix socket path such as /dev/log, or a numeric IP address and port such as 127.0.0.1:514`));
    }
  }
  return issues;
}

/** The typed section; `configDir` resolves a relative file path (as the file's other paths are). */
export function buildConnectionLog(raw: RawConnectionLog, configDir: string): ConnectionLogConfig {
  const interval = parseDuration(raw.interval, 'connection_log.interval', DURATION_BOUNDS['connection_log.interval'].maxMs, { zero: 'off' });
  const common = {
    format: raw.format,
    sample: raw.sample,
    maxPerSecond: raw.max_per_second,
    intervalMs: interval.ok ? interval.ms : 0,
    facility: FACILITIES[raw.syslog.facility],
    tag: raw.syslog.tag,
  };
  if (raw.output === 'off' || raw.output === 'stdout') return { output: raw.output, ...common };
  if (raw.output === 'syslog') {
    const udp = syslogUdp(raw.syslog.address);
    return udp === undefined
      ? { output: 'syslog', path: raw.syslog.address, ...common }
      : { output: 'syslog', syslogHost: udp.host, syslogPort: udp.port, ...common };
  }
  return { output: 'file', path: isAbsolute(raw.output) ? raw.output : resolve(configDir, raw.output), ...common };
}

function syslogUdp(address: string): { host: string; port: number } | undefined {
  const match = HOST_PORT.exec(address);
  if (match === null) return undefined;
  const port = Number(match[2]);
  if (isIP(match[1]!) === 0 || port < 1 || port > 65535) return undefined;
  return { host: match[1]!, port };
}
