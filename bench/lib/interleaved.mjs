// The measuring loop the benchmarks share (redis, tcp-latency, tcp-connrate,
// tcp-throughput): every round measures every running target under every
// load, targets in an order rotated round by round, and each measurement
// records the CPU the proxy (with its child processes) and the
// servers used while it ran.
//
// A load is either unconstrained (the proxy competes for the machine's cores
// with the load generator and the servers, as they do on this 2-core
// machine) or proxy-bound (`budget: true`): the proxy's processes are moved
// into a cgroup holding them to a fixed share of one core for the
// measurement, so the proxy, not the machine, is what limits the path and
// the figure measures the proxy's work per request (bench/lib/cpu-budget.mjs).

import { openCpuBudget } from './cpu-budget.mjs';
import { cpuSnapshot, cpuDelta } from './cpu.mjs';
import { rmSync } from 'node:fs';
import { onInterrupt, stopProcess, withChildren } from './proc.mjs';
import { droppedIfExited, rotation } from './rounds.mjs';
import { fixed } from './stats.mjs';

/** A target failing this many measurements in a row is dropped from the run. */
const MAX_CONSECUTIVE_FAILURES = 2;

/**
 * The cgroup for proxy-bound loads at `percent` of one core, or null with the
 * reason recorded in `skipped` (0 = no proxy-bound load asked for). Closed by
 * the caller (`budget.close()`) and on interrupt.
 */
export function openProxyBudget(name, percent, skipped, log) {
  if (percent <= 0) return null;
  const budget = openCpuBudget(`${name}-${process.pid}`, percent);
  if (budget.error) {
    skipped.set(`proxy-bound (${percent}% of a core)`, budget.error);
    log(`proxy-bound load: SKIPPED, ${budget.error}`);
    return null;
  }
  onInterrupt(() => budget.close());
  return budget;
}

/**
 * Ends a run, whatever happened in it: stops every target's proxy (`running`,
 * as for runInterleaved) and the `servers` (each given `serverGraceMs` to
 * exit), closes the proxy-bound budget and removes the scratch `dir`.
 */
export async function endRun({ running, servers, budget, dir, serverGraceMs = 5000 }) {
  for (const t of running.values()) await stopProcess(t.handle);
  for (const server of servers) await stopProcess(server, serverGraceMs);
  budget?.close();
  rmSync(dir, { recursive: true, force: true });
}

/** A sample's proxy CPU for a log line: `73%`, or `–` for a target without a proxy (direct). */
export function proxyCpuText(sample) {
  return sample.proxyCpu === undefined ? '–' : `${fixed(sample.proxyCpu, 0)}%`;
}

/**
 * What a results table's heading says of its load: ` (proxy-bound: each proxy
 * held to P% of one core)`, or `otherwise` for an unconstrained load.
 */
export function proxyBoundNote(load, proxyCpu, otherwise = '') {
  return load.budget ? ` (proxy-bound: each proxy held to ${proxyCpu}% of one core)` : otherwise;
}

/**
 * The loads of a benchmark: `base` loads once unconstrained and, when
 * `proxyCpu` > 0, once more proxy-bound. Each is `{ key, label, budget, ...base }`.
 */
export function withProxyBound(base, proxyCpu) {
  const loads = base.map((l) => ({ ...l, budget: false }));
  if (proxyCpu > 0) {
    for (const l of base) loads.push({ ...l, key: `${l.key}@bound`, label: `${l.label}, proxy ≤ ${proxyCpu}%`, budget: true });
  }
  return loads;
}

/**
 * Runs `rounds` interleaved rounds. `running`: Map name -> { port, handle }
 * (handle null for a target without a proxy, e.g. direct); `order`: the
 * target names in canonical order; `servers`: process handles whose CPU is
 * recorded as `serverCpu`; `measure(name, target, load)` resolves a result
 * object or `{ error }`; `describe(name, load, sample)` returns the log line.
 * A proxy-bound load is skipped for targets without a proxy and when
 * `budget` is null. `afterFailure(name, target, load, result)`, optional, is
 * awaited after each failed measurement, before the target may be dropped
 * (e.g. to restart a server left waiting on the dead client; it may replace
 * entries of `servers`, which is read again for every measurement).
 * Resolves Map `${name}/${load.key}` -> [sample], a sample being the result
 * plus `proxyCpu` (% of one core, undefined without a proxy), `proxyThreads`
 * (the proxy's threads, `{ tid, comm, pct }` busiest first; [] without a
 * proxy), `serverCpu`, `busy` (machine %) and `others` (CPU of processes
 * outside the benchmark).
 */
export async function runInterleaved({ running, order, loads, rounds, servers, budget, measure, describe, afterFailure, skipped, log }) {
  const samples = new Map(order.flatMap((t) => loads.map((l) => [`${t}/${l.key}`, []])));
  const failures = new Map();
  const live = order.filter((t) => running.has(t));
  for (let round = 0; round < rounds; round++) {
    const rotated = rotation(live, round);
    log(`\nround ${round + 1}/${rounds}: ${rotated.join(', ')}`);
    for (const name of rotated) {
      for (const load of loads) {
        const t = running.get(name);
        if (!t) break;
        if (droppedIfExited(name, t, running, skipped, log)) break;
        if (load.budget && (!budget || !t.handle)) continue;
        const proxyPids = withChildren(t.handle?.pid);
        const serverPids = servers.map((s) => s.pid);
        if (load.budget) budget.confine(proxyPids);
        const before = cpuSnapshot([...proxyPids, ...serverPids]);
        let r;
        try {
          r = await measure(name, t, load);
        } finally {
          if (load.budget) budget.release(proxyPids);
        }
        const cpu = cpuDelta(before, cpuSnapshot([...proxyPids, ...serverPids]));
        if (r.error) {
          const n = (failures.get(name) ?? 0) + 1;
          failures.set(name, n);
          log(`  ${name.padEnd(18)} ${load.label}: FAILED: ${r.error}`);
          if (afterFailure) await afterFailure(name, t, load, r);
          if (n >= MAX_CONSECUTIVE_FAILURES) {
            skipped.set(name, `${n} failures in a row, last: ${r.error}`);
            log(`  ${name}: dropped from the run after ${n} failures in a row`);
            await stopProcess(t.handle);
            running.delete(name);
          }
          continue;
        }
        failures.set(name, 0);
        const sum = (pids) => pids.reduce((total, pid) => total + (cpu.procs.get(pid)?.pct ?? 0), 0);
        const sample = {
          ...r,
          proxyCpu: t.handle ? sum(proxyPids) : undefined,
          proxyThreads: proxyPids.flatMap((pid) => cpu.procs.get(pid)?.threads ?? []).sort((x, y) => y.pct - x.pct),
          serverCpu: sum(serverPids),
          busy: cpu.machineBusyPct,
          others: cpu.othersPct,
        };
        samples.get(`${name}/${load.key}`).push(sample);
        log(`  ${name.padEnd(18)} ${describe(name, load, sample)}`);
      }
    }
  }
  return samples;
}
