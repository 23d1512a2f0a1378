// `fulcrum status`: the state of a running Fulcrum, read from its admin API,
// as a table in the terminal (the status page's content), or --json.
import type { StatusView } from '../admin/state-view.js';
import { AdminUnreachable, apiErrorText, callApi, resolveTarget } from './admin-client.js';
import { EXIT_OK, EXIT_RUNTIME } from './exit-codes.js';
import { COMMAND_USAGE, parseCommandOptions } from './usage.js';

export async function statusCommand(args: readonly string[]): Promise<number> {
  const options = parseCommandOptions('status', args, ['config', 'admin', 'token-file', 'json', 'help']);
  if (options.help) {
    process.stdout.write(COMMAND_USAGE.status);
    return EXIT_OK;
  }
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
    if (!(err instanceof AdminUnreachable)) throw err;
    process.stderr.write(`fulcrum: ${err.message}\n`);
    return EXIT_RUNTIME;
  }
}

const COLUMNS = ['SERVICE', 'BACKEND', 'STATE', 'SINCE', 'HEALTH', 'ADMIN', 'WEIGHT', 'ACTIVE', 'TOTAL', 'FAILED', 'IN', 'OUT', 'LAST CHECK'] as const;

/** The status as text: a header line, then one row per service (its totals) and per backend. */
export function formatStatus(status: StatusView): string {
  const rows: string[][] = [];
  for (const s of status.services) {
    rows.push([s.name, `${s.listen} ${s.balance}`, `${s.backendsUp}/${s.backends.length} up`, '', '', '', '', String(s.active), String(s.accepted), String(s.failed), bytes(s.bytesIn), bytes(s.bytesOut), '']);
    for (const b of s.backends) {
      const last = b.check.history.at(-1);
      const check = b.check.type === 'none' ? '-' : last ? `${b.check.type} ${last.ok ? 'ok' : 'FAIL'} ${last.latencyMs.toFixed(1)}ms` : `${b.check.type} (pending)`;
      rows.push(['', `${b.address}${b.backup ? ' (backup)' : ''}`, b.state, duration(status.now - b.since), b.health, b.admin, String(b.weight), String(b.active), String(b.accepted), String(b.failed), bytes(b.bytesIn), bytes(b.bytesOut), check]);
    }
  }
  const widths = COLUMNS.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const reload = status.lastReload
    ? `, last reload ${new Date(status.lastReload.at).toISOString()} (${status.lastReload.trigger}, ${status.lastReload.outcome.ok ? 'applied' : 'rejected'})`
    : '';
  const ha = status.ha ? `\nHA: ${status.ha.state} (VRID ${status.ha.vrid}, priority ${status.ha.effectivePriority}/${status.ha.priority})` : '';
  const header = `fulcrum ${status.version}, pid ${status.pid}, up ${duration(status.now - status.startedAt)}, ${status.workers} workers\nconfig ${status.config} (generation ${status.generation}${reload})${ha}\n\n`;
  return `${header}${[line(COLUMNS), ...rows.map(line)].join('\n')}\n`;
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return i === 0 ? `${value} B` : `${value.toFixed(1)} ${units[i]}`;
}

function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${d > 0 ? `${d}d ` : ''}${d > 0 || h > 0 ? `${h}h ` : ''}${m}m ${s % 60}s`;
}
