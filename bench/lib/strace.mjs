// Syscalls a running process makes per unit of work: `strace -c -f -p PID`
// attached while a workload runs, then stopped (SIGTERM makes strace detach
// and write its summary). strace slows the traced process a lot, so this is a
// count, never a timing: run it outside the measured rounds.

import { readFileSync, rmSync } from 'node:fs';
import { startProcess, stopProcess, which, sleep } from './proc.mjs';

/**
 * Attach to `pid` (all threads), run `workload()` (which resolves the number
 * of units done, e.g. connections), detach. Resolves
 * `{ units, total, byName: [[syscall, calls, errors]...] }` sorted by calls,
 * or `{ error }` when strace is missing or produced no summary.
 */
export async function countSyscalls(pid, workload, file) {
  if (!which('strace')) return { error: 'strace is not installed (apt-get install strace)' };
  const tracer = startProcess('strace', 'strace', ['-c', '-f', '-o', file, '-p', String(pid)]);
  await sleep(500); // attached to every thread before the workload starts
  let units;
  try {
    units = await workload();
  } finally {
    await stopProcess(tracer);
  }
  let text;
  try {
    text = readFileSync(file, 'utf8');
    rmSync(file, { force: true });
  } catch (err) {
    return { error: `no strace summary (${err.message})` };
  }
  // Rows: % time, seconds, usecs/call, calls, [errors], syscall.
  const byName = [];
  for (const line of text.split('\n')) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 5 || !/^\d/.test(cols[0]) || cols[cols.length - 1] === 'total') continue;
    const name = cols[cols.length - 1];
    const calls = Number(cols[3]);
    const errors = cols.length >= 6 ? Number(cols[4]) : 0;
    if (Number.isFinite(calls)) byName.push([name, calls, errors]);
  }
  if (byName.length === 0) return { error: 'strace summary had no rows' };
  byName.sort((a, b) => b[1] - a[1]);
  return { units, total: byName.reduce((n, [, calls]) => n + calls, 0), byName };
}
