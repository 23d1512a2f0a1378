// A CPU budget for the process under test: a cgroup with a CPU quota
// (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us`) and a high weight, so a
// proxy gets the same share of a core whichever it is — no more, and, as the
// weight puts it ahead of the load generator and echo servers it shares the
// machine with, no less — and is the bottleneck of the path. Needs root and
// a writable cpu controller; `openCpuBudget` says why when there is none.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// A short period: the quota is spent in slices of 10 ms rather than 50 ms
// bursts followed by 50 ms stalls.
const PERIOD_US = 20_000;
// Ten times the default weight (v1 shares 1024, v2 weight 100).
const WEIGHT_V1 = 10240;
const WEIGHT_V2 = 1000;

/** Where to make the cgroup: v2 with the cpu controller enabled, else v1's cpu hierarchy. */
function cpuHierarchy() {
  const v2 = '/sys/fs/cgroup';
  try {
    if (readFileSync(join(v2, 'cgroup.controllers'), 'utf8').split(/\s+/).includes('cpu')) {
      return { root: v2, v2: true };
    }
  } catch {
    // not a v2 root
  }
  const v1 = '/sys/fs/cgroup/cpu';
  if (existsSync(join(v1, 'cpu.cfs_quota_us'))) return { root: v1, v2: false };
  return null;
}

/**
 * Makes cgroup `name` limited to `percent` of one core (100 = one core), weighted to get it.
 * Returns `{ confine(pids), release(pids), close() }`, or `{ error }` when this
 * machine cannot (no cpu controller, not root). confine moves whole processes
 * (every thread) in; release moves them back to the root group.
 */
export function openCpuBudget(name, percent) {
  const hierarchy = cpuHierarchy();
  if (!hierarchy) return { error: 'no cgroup cpu controller (cgroup v2 cpu or v1 cpu hierarchy) on this machine' };
  const dir = join(hierarchy.root, name);
  const quota = Math.round((PERIOD_US * percent) / 100);
  try {
    mkdirSync(dir, { recursive: true });
    if (hierarchy.v2) {
      writeFileSync(join(dir, 'cpu.max'), `${quota} ${PERIOD_US}`);
      writeFileSync(join(dir, 'cpu.weight'), String(WEIGHT_V2));
    } else {
      writeFileSync(join(dir, 'cpu.cfs_period_us'), String(PERIOD_US));
      writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(quota));
      writeFileSync(join(dir, 'cpu.shares'), String(WEIGHT_V1));
    }
  } catch (err) {
    try {
      rmdirSync(dir);
    } catch {
      // never made
    }
    return { error: `cannot make cgroup ${dir}: ${err.code ?? err.message}` };
  }
  const move = (group, pids) => {
    for (const pid of pids) {
      try {
        writeFileSync(join(group, 'cgroup.procs'), String(pid));
      } catch (err) {
        if (err.code !== 'ESRCH') throw err; // ESRCH: it has exited
      }
    }
  };
  return {
    confine: (pids) => move(dir, pids),
    release: (pids) => move(hierarchy.root, pids),
    // Idempotent (called at the end and again by an interrupt hook).
    close: () => {
      if (!existsSync(dir)) return;
      // Whatever is still inside goes back first: a cgroup with members cannot be removed.
      const left = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
      move(hierarchy.root, left);
      rmdirSync(dir);
    },
  };
}
