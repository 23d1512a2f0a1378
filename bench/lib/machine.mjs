// What a result was measured on: printed with every run and written to RESULTS.md.

import { readFileSync } from 'node:fs';
import os from 'node:os';
import { firstLine } from './proc.mjs';

/** CPU model name from /proc/cpuinfo, or os.cpus()'s when that file has none. */
function cpuModel() {
  try {
    const m = readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m);
    if (m) return m[1].trim();
  } catch {
    // not Linux, or /proc not mounted: fall through
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

/**
 * Machine facts as `[label, value]` pairs: nproc, CPU, kernel, node, and the
 * first line of each tool's version command (`tools`: `[{ label, cmd, args }]`;
 * 'not installed' when it cannot run).
 */
export function machineInfo(tools = []) {
  const info = [
    ['nproc', String(os.availableParallelism())],
    ['cpu', cpuModel()],
    ['kernel', `${os.type()} ${os.release()} ${os.arch()}`],
    ['node', process.version],
  ];
  for (const t of tools) info.push([t.label, firstLine(t.cmd, t.args) ?? 'not installed']);
  return info;
}

/** The command line this process was started with, as a user would type it (`node bench/x.mjs --quick`). */
export function commandLine() {
  const quote = (s) => (/^[\w./:=,@+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  const script = process.argv[1] ? [quote(relativeToCwd(process.argv[1]))] : [];
  return ['node', ...script, ...process.argv.slice(2).map(quote)].join(' ');
}

function relativeToCwd(path) {
  const cwd = process.cwd() + '/';
  return path.startsWith(cwd) ? path.slice(cwd.length) : path;
}
