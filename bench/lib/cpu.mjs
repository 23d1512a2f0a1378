// CPU accounting from /proc, so a benchmark can say where the cycles went
// (per process, per thread, and for the whole machine) during a measurement.
//
// Usage: `const s = cpuSnapshot([pid...])`, run the load, then
// `cpuDelta(s, cpuSnapshot([pid...]))`. Percentages are of one core
// (a process busy on two cores shows 200%).

import { readFileSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fixed, median } from './stats.mjs';

/** Clock ticks per second for /proc times (USER_HZ); 100 on every common Linux. */
const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 });
  const n = Number.parseInt(r.stdout ?? '', 10);
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/**
 * Parse a /proc/.../stat line: returns `{ comm, ticks }` (utime + stime) or null
 * when the file is gone. `comm` may contain spaces and parentheses, so split on the last ')'.
 */
function readStat(path) {
  let text;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const comm = text.slice(open + 1, close);
  // Fields after ')' start at field 3 (state); utime is field 14, stime field 15.
  const rest = text.slice(close + 2).split(' ');
  return { comm, ticks: Number(rest[11]) + Number(rest[12]) };
}

/** Per-thread ticks of one process: Map tid -> { comm, ticks }. Empty when the process is gone. */
function threadTicks(pid) {
  const threads = new Map();
  let tids;
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return threads;
  }
  for (const tid of tids) {
    const st = readStat(`/proc/${pid}/task/${tid}/stat`);
    if (st) threads.set(tid, st);
  }
  return threads;
}

/** Whole-machine jiffies from /proc/stat: `{ total, idle }` (idle includes iowait). */
function systemTicks() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest fields are already in user)
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { total, idle: v[3] + (v[4] ?? 0) };
}

/**
 * Ticks of every process that is neither this process nor one of its
 * descendants (the benchmark's own servers and clients, and their workers,
 * as nginx's): Map pid -> ticks.
 */
function otherTicks() {
  const all = new Map(); // pid -> { ppid, ticks }
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    let text;
    try {
      text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // rest[1] is field 4, ppid.
    all.set(pid, { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) });
  }
  const ours = (pid) => {
    for (let p = pid, depth = 0; p > 1 && depth < 64; p = all.get(p)?.ppid ?? 0, depth++) {
      if (p === process.pid) return true;
    }
    return false;
  };
  const others = new Map();
  for (const [pid, { ticks }] of all) if (!ours(pid)) others.set(pid, ticks);
  return others;
}

/** Take a CPU snapshot of the given PIDs (undefined/null entries are ignored), of other processes and of the machine. */
export function cpuSnapshot(pids) {
  const procs = new Map();
  for (const pid of pids) {
    if (pid) procs.set(pid, { self: readStat(`/proc/${pid}/stat`), threads: threadTicks(pid) });
  }
  return { at: process.hrtime.bigint(), system: systemTicks(), procs, others: otherTicks() };
}

/**
 * Compare two snapshots. Returns
 * `{ seconds, machineBusyPct, othersPct, procs: Map pid -> { pct, threads: [{ tid, comm, pct }] } }`,
 * threads sorted busiest first. A PID missing from either snapshot is left out.
 * `machineBusyPct` is of the whole machine (100 = every core busy); `othersPct`
 * is the CPU of processes outside the benchmark (% of one core), a lower bound
 * since processes that started and ended between the snapshots are not seen.
 */
export function cpuDelta(before, after) {
  const seconds = Number(after.at - before.at) / 1e9;
  const dTotal = after.system.total - before.system.total;
  const dIdle = after.system.idle - before.system.idle;
  const machineBusyPct = dTotal > 0 ? (100 * (dTotal - dIdle)) / dTotal : 0;
  const pct = (ticks) => (seconds > 0 ? (100 * ticks) / CLK_TCK / seconds : 0);
  const procs = new Map();
  for (const [pid, b] of before.procs) {
    const a = after.procs.get(pid);
    if (!a || !a.self || !b.self) continue;
    const threads = [];
    for (const [tid, at] of a.threads) {
      const bt = b.threads.get(tid);
      threads.push({ tid, comm: at.comm, pct: pct(at.ticks - (bt ? bt.ticks : 0)) });
    }
    threads.sort((x, y) => y.pct - x.pct);
    procs.set(pid, { pct: pct(a.self.ticks - b.self.ticks), threads });
  }
  let otherTicksSum = 0;
  for (const [pid, ticks] of after.others) otherTicksSum += ticks - (before.others.get(pid) ?? 0);
  return { seconds, machineBusyPct, othersPct: pct(otherTicksSum), procs };
}

/**
 * The sentence on other work during a run's measurements, from each
 * measurement's cpuDelta().othersPct (non-numbers ignored); '' when none.
 */
export function otherWorkNote(othersPcts) {
  const others = othersPcts.filter(Number.isFinite);
  if (others.length === 0) return '';
  const busy = median(others) > 10;
  return `Processes outside the benchmark used a median ${fixed(median(others), 0)}% of one core during measurements ` +
    `(max ${fixed(Math.max(...others), 0)}%)` +
    (busy ? ': other work was running on this machine, so the absolute numbers are depressed; compare the ratios.' : '.');
}
