// `fulcrum status`: the state of a running Fulcrum, read from its admin API,
// as a table in the terminal (the status page's content), or --json.
import type { StatusView } from '../admin/state-view.js';
import type { DnsEntryStatus } from '../discovery/dns-discovery.js';
import { flowTableText } from '../admin/udp-counters.js';
import { admissionText } from '../admin/admission-counters.js';
import { relayShown, relayText } from '../admin/relay-counters.js';
import { endedText } from '../admin/termination-words.js';
import { scaleToUnit } from '../units.js';
import { adminCommandFailed, apiErrorText, callApi, resolveTarget } from './admin-client.js';
import { EXIT_OK, EXIT_RUNTIME } from './exit-codes.js';
import { helpShown, parseCommandOptions } from './usage.js';

export async function statusCommand(args: readonly string[]): Promise<number> {
  const options = parseCommandOptions('status', args, ['config', 'admin', 'token-file', 'json', 'help']);
  if (helpShown('status', options)) return EXIT_OK;
  try {
    const target = await resolveTarget(options);
    const response = await callApi(target, 'GET', '/api/status', 10_000);
    if (response.status !== 200) {
      process.stderr.write(`fulcrum: admin API at ${target.base}: ${apiErrorText(response)}\n`);
      return EXIT_RUNTIME;
    }
    const status = response.body as StatusView;
    process.stdout.write(options.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
    return EXIT_OK;
  } catch (err) {
    return adminCommandFailed(err);
  }
}

// PEAK: the most connections a backend had at once, against its max_connections (-: none);
// CONN/S: new connections (udp: flows) per second over the last second.
const COLUMNS = ['SERVICE', 'BACKEND', 'STATE', 'SINCE', 'HEALTH', 'ADMIN', 'WEIGHT', 'ACTIVE', 'PEAK', 'CONN/S', 'TOTAL', 'FAILED', 'IN', 'OUT', 'LAST CHECK'] as const;
/** With a protocol: udp service: datagram columns before LAST CHECK (a TCP-only table has none). */
const UDP_COLUMNS = [...COLUMNS.slice(0, -1), 'DGRAMS IN', 'DGRAMS OUT', 'LAST CHECK'] as const;
const UDP_NOTE =
  'udp services: ACTIVE and TOTAL count flows; FAILED counts new flows dropped (service row) or ICMP unreachable answers and send errors (backend row)';

/**
 * The status as text: a header line, then one row per service (its totals) and
 * per backend. A udp service's row is followed by its flow table's counters,
 * and the table gains DGRAMS IN / DGRAMS OUT columns and a note on units.
 */
export function formatStatus(status: StatusView): string {
  const udpShown = status.services.some((s) => s.udp);
  const columns: readonly string[] = udpShown ? UDP_COLUMNS : COLUMNS;
  // Datagram cells (only when the table has those columns; '-' on TCP rows).
  const datagrams = (udp: { datagramsIn: number; datagramsOut: number } | undefined): string[] =>
    !udpShown ? [] : udp ? [String(udp.datagramsIn), String(udp.datagramsOut)] : ['-', '-'];
  // A row is table cells, or a line printed as is (not aligned, not measured).
  const rows: Array<string[] | string> = [];
  for (const s of status.services) {
    rows.push([s.name, `${s.listen} ${s.balance}`, `${s.backendsUp}/${s.backends.length} up`, '', '', '', '', String(s.active), '', rate(s.sessionRate), String(s.accepted), String(s.failed), bytes(s.bytesIn), bytes(s.bytesOut), ...datagrams(s.udp), '']);
    if (s.udp) rows.push(flowTableText(s.udp));
    // The queue is the service's (one per service, over its backends); a datagram is never queued.
    else rows.push(`queue: ${s.queueCurrent} waiting now, ${s.queued} waited, ${s.refused} refused (${s.queueTimeouts} after the queue timeout)`);
    if (s.guarded) rows.push(admissionText(s.admission));
    if (relayShown(s.relay)) rows.push(relayText(s.relay));
    rows.push(`ended: ${endedText(s.ended)}`);
    for (const d of s.dns ?? []) rows.push(dnsText(d, status.now));
    for (const b of s.backends) {
      const last = b.check.history.at(-1);
      // A failed check says why (the last column, so a long reason shifts nothing).
      const check = b.check.type === 'none' ? '-' : last ? `${b.check.type} ${last.ok ? 'ok' : 'FAIL'} ${last.latencyMs.toFixed(1)}ms${last.ok ? '' : `: ${last.detail}`}` : `${b.check.type} (pending)`;
      const peak = `${b.peak}/${b.maxConnections > 0 ? b.maxConnections : '-'}`;
      rows.push(['', `${b.address}${b.backup ? ' (backup)' : ''}${b.origin !== undefined && b.origin !== 'file' ? ` (${b.origin})` : ''}`, b.state, duration(status.now - b.since), b.health, b.admin, String(b.weight), String(b.active), peak, rate(b.sessionRate), String(b.accepted), String(b.failed), bytes(b.bytesIn), bytes(b.bytesOut), ...datagrams(b.udp), check]);
    }
  }
  const cellRows = rows.filter((r): r is string[] => typeof r !== 'string');
  const widths = columns.map((c, i) => Math.max(c.length, ...cellRows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  // Flow-table lines start under BACKEND.
  const indent = ' '.repeat(widths[0]! + 2);
  const reload = status.lastReload
    ? `, last reload ${new Date(status.lastReload.at).toISOString()} (${status.lastReload.trigger}, ${status.lastReload.outcome.ok ? 'applied' : 'rejected'})`
    : '';
  const ha = status.ha ? `\nHA: ${status.ha.state} (VRID ${status.ha.vrid}, priority ${status.ha.effectivePriority}/${status.ha.priority})` : '';
  const header = `fulcrum ${status.version}, pid ${status.pid}, up ${duration(status.now - status.startedAt)}, ${status.workers} workers\nconfig ${status.config} (generation ${status.generation}${reload})${ha}\n\n`;
  const table = [line(columns), ...rows.map((r) => (typeof r === 'string' ? `${indent}${r}` : line(r)))].join('\n');
  return `${header}${table}\n${udpShown ? `\n${UDP_NOTE}\n` : ''}`;
}

/** One backend name being resolved: what it gives now, when DNS last answered or failed. */
export function dnsText(d: DnsEntryStatus, now: number): string {
  const ago = (at: number | undefined): string => (at === undefined ? 'never' : `${duration(now - at)} ago`);
  const count = `${d.addresses.length} address${d.addresses.length === 1 ? '' : 'es'}`;
  const answered = `last answer ${ago(d.lastAnswerAt)}${d.ttlSeconds !== undefined ? ` (ttl ${d.ttlSeconds}s)` : ''}`;
  const next = d.nextAt !== undefined ? `, next ${d.nextAt > now ? `in ${duration(d.nextAt - now)}` : 'now'}` : '';
  if (d.error !== undefined) {
    return `dns ${d.name}: FAILING: ${d.error}; ${d.addresses.length === 0 ? 'no address yet' : `keeping ${count}`}, ${answered}, last failure ${ago(d.lastFailureAt)}${next}`;
  }
  return `dns ${d.name}: ${count}, ${answered}, last failure ${ago(d.lastFailureAt)}${next}`;
}

function rate(perSecond: number): string {
  return String(Math.round(perSecond));
}

function bytes(n: number): string {
  const { value, unit, index } = scaleToUnit(n, 1024, ['B', 'KiB', 'MiB', 'GiB', 'TiB']);
  return index === 0 ? `${value} B` : `${value.toFixed(1)} ${unit}`;
}

function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${d > 0 ? `${d}d ` : ''}${d > 0 || h > 0 ? `${h}h ` : ''}${m}m ${s % 60}s`;
}
