#!/usr/bin/env node
// TCP throughput with iperf3: straight to the server (direct), through
// Fulcrum, and through HAProxy, with 1 and 4 parallel streams.
//
// Targets are measured interleaved (each round visits every target, the order
// rotated by one each round) so that the noise of a small shared machine hits
// all of them alike; the summary is the median over rounds. A target that
// cannot start (not built, not installed) is skipped with the reason.
//
//   node bench/tcp-throughput.mjs [--duration 5] [--rounds 5] [--streams 1,4]
//        [--targets direct,fulcrum,haproxy] [--omit 1] [--quick] [--write]
//
// fulcrum-guarded (not in the default set): fulcrum with allow/deny and
// client_limits far above what iperf3 does; the summary gives its ratio to
// fulcrum. Without send_proxy: iperf3 cannot read a PROXY header (the header
// costs one send per connection, which tcp-connrate's fulcrum-guarded measures).

import { droppedIfExited, rotation } from './lib/rounds.mjs';
import { intArg, targetsArg } from './lib/args.mjs';
import { parseArgs } from 'node:util';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installCleanup, onInterrupt, stopProcess } from './lib/proc.mjs';
import { freePorts } from './lib/net.mjs';
import { cpuSnapshot, cpuDelta } from './lib/cpu.mjs';
import { summarize, ratio, fixed, median } from './lib/stats.mjs';
import { markdownTable } from './lib/table.mjs';
import { writeSection, RESULTS_FILE } from './lib/results.mjs';
import { machineInfo, commandLine } from './lib/machine.mjs';
import { startIperfServer, restartIperfServer, runIperfTcp, iperf3Version } from './lib/iperf3.mjs';
import { GUARD_KEYS, startFulcrum, startHaproxy, fulcrumVersion, haproxyVersion } from './lib/proxies.mjs';

const SECTION = 'tcp-throughput';
const DEFAULT_TARGETS = ['direct', 'fulcrum', 'haproxy'];
const ALL_TARGETS = [...DEFAULT_TARGETS, 'fulcrum-guarded'];
/** Proxy worker threads: one per core on the 2-core reference machine, the same for both proxies. */
const PROXY_THREADS = 2;
/** A target whose measurements fail this many times in a row is dropped from the run. */
const MAX_CONSECUTIVE_FAILURES = 2;

function usage(message) {
  if (message) process.stderr.write(`tcp-throughput: ${message}\n`);
  process.stderr.write(
    'usage: node bench/tcp-throughput.mjs [--duration S] [--rounds N] [--omit S] [--streams 1,4]\n' +
      '                                     [--targets direct,fulcrum,haproxy] [--quick] [--write]\n',
  );
  process.exit(2);
}

/** Parse and check the command line; `--quick` sets 1 round of 2 s unless given explicitly. */
function options() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        duration: { type: 'string' },
        rounds: { type: 'string' },
        omit: { type: 'string', default: '1' },
        streams: { type: 'string', default: '1,4' },
        targets: { type: 'string', default: DEFAULT_TARGETS.join(',') },
        quick: { type: 'boolean', default: false },
        write: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    usage(err.message);
  }
  if (values.help) usage();
  try {
    const duration = intArg('duration', values.duration ?? (values.quick ? '2' : '5'), 1, 600);
    const rounds = intArg('rounds', values.rounds ?? (values.quick ? '1' : '5'), 1, 100);
    const omit = intArg('omit', values.omit, 0, 60);
    const streams = [...new Set(values.streams.split(',').map((s) => intArg('streams', s.trim(), 1, 128)))];
    // Canonical order; the rounds rotate it anyway.
    const targets = targetsArg(values.targets, ALL_TARGETS);
    return { duration, rounds, omit, streams, targets, quick: values.quick, write: values.write };
  } catch (err) {
    usage(err.message);
  }
}

const gbps = (bps) => bps / 1e9;
/** 1/5/15-minute load averages: other work on the machine skews every target, so it is recorded. */
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const log = (line = '') => process.stdout.write(`${line}\n`);

/** `73% (fulcrum-w0 50, fulcrum-w1 23)`: a process's CPU and its busy threads', for the per-measurement lines. */
function cpuText(proc) {
  if (!proc) return '–';
  const threads = proc.threads.filter((t) => t.pct >= 1).slice(0, 4).map((t) => `${t.comm} ${t.pct.toFixed(0)}`);
  return `${proc.pct.toFixed(0)}% (${threads.join(', ') || 'no thread above 1%'})`;
}

async function main() {
  const opt = options();
  installCleanup();

  const machine = machineInfo();
  const iperfVer = iperf3Version();
  const haproxyVer = haproxyVersion();
  machine.push(['iperf3', iperfVer ?? 'not installed'], ['haproxy', haproxyVer ?? 'not installed'], ['fulcrum', fulcrumVersion()]);

  const loadAtStart = loadavg();
  log(`command: ${commandLine()}`);
  for (const [k, v] of machine) log(`${k.padEnd(8)} ${v}`);
  log(`loadavg  ${loadAtStart} (at start)`);
  log(`plan: ${opt.rounds} round(s) x streams ${opt.streams.join(',')} x targets ${opt.targets.join(',')}; ` +
    `iperf3 -t ${opt.duration} -O ${opt.omit} each; proxies with ${PROXY_THREADS} threads`);
  if (!iperfVer) throw new Error('iperf3 is not installed (apt-get install iperf3)');

  const [serverPort, fulcrumPort, haproxyPort, guardedPort] = await freePorts(4);
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-bench-'));
  onInterrupt(() => rmSync(dir, { recursive: true, force: true }));
  /** name -> { port, handle? } for targets that are up. */
  const running = new Map();
  /** name -> reason, for targets left out. */
  const skipped = new Map();
  let server = null;

  try {
    server = await startIperfServer(serverPort);
    log(`iperf3 server: pid ${server.pid}, 127.0.0.1:${serverPort}`);

    for (const name of opt.targets) {
      if (name === 'direct') {
        running.set(name, { port: serverPort, handle: null });
        continue;
      }
      const start = name.startsWith('fulcrum') ? startFulcrum : startHaproxy;
      const port = { fulcrum: fulcrumPort, haproxy: haproxyPort, 'fulcrum-guarded': guardedPort }[name];
      const guard = name === 'fulcrum-guarded' ? { serviceKeys: GUARD_KEYS, file: 'fulcrum-guarded.yaml' } : {};
      try {
        const { handle } = await start({ dir, listenPort: port, backends: [serverPort], workers: PROXY_THREADS, threads: PROXY_THREADS, ...guard });
        running.set(name, { port, handle });
        log(`${name}: pid ${handle.pid}, 127.0.0.1:${port} -> 127.0.0.1:${serverPort}`);
      } catch (err) {
        skipped.set(name, `did not start: ${err.message}`);
        log(`${name}: SKIPPED, ${err.message}`);
      }
    }

    // One short unrecorded run through each proxy: proves the path carries
    // data before the rounds start, and warms caches and pipe pools.
    for (const [name, t] of running) {
      if (!t.handle) continue;
      const r = await runIperfTcp({ port: t.port, seconds: 1, omit: 0, streams: 1 });
      if (!r.ok) {
        skipped.set(name, `warm-up failed: ${r.error}`);
        log(`${name}: SKIPPED, warm-up failed: ${r.error}`);
        await stopProcess(t.handle);
        running.delete(name);
        server = await restartIperfServer(server, serverPort);
      }
    }

    /** streams -> target -> [{ bps, proxyCpu, serverCpu, clientCpu, busy }] */
    const samples = new Map(opt.streams.map((s) => [s, new Map(opt.targets.map((t) => [t, []]))]));
    const failures = new Map();
    const order = opt.targets.filter((t) => running.has(t));

    for (let round = 0; round < opt.rounds; round++) {
      const rotated = rotation(order, round).filter((t) => running.has(t));
      log(`\nround ${round + 1}/${opt.rounds}: ${rotated.join(', ')}`);
      for (const streams of opt.streams) {
        for (const name of rotated) {
          const t = running.get(name);
          if (!t) continue;
          if (droppedIfExited(name, t, running, skipped, log)) continue;
          const pids = [t.handle?.pid, server.pid];
          const before = cpuSnapshot(pids);
          const r = await runIperfTcp({ port: t.port, seconds: opt.duration, omit: opt.omit, streams });
          const cpu = cpuDelta(before, cpuSnapshot(pids));
          const label = `  P${String(streams).padEnd(3)} ${name.padEnd(8)}`;
          if (!r.ok) {
            const n = (failures.get(name) ?? 0) + 1;
            failures.set(name, n);
            log(`${label} FAILED: ${r.error}`);
            server = await restartIperfServer(server, serverPort);
            if (n >= MAX_CONSECUTIVE_FAILURES) {
              skipped.set(name, `${n} failures in a row, last: ${r.error}`);
              log(`  ${name}: dropped from the run after ${n} failures in a row`);
              await stopProcess(t.handle);
              running.delete(name);
            }
            continue;
          }
          failures.set(name, 0);
          const proxy = t.handle ? cpu.procs.get(t.handle.pid) : null;
          samples.get(streams).get(name).push({
            bps: r.bitsPerSecond,
            proxyCpu: proxy?.pct,
            serverCpu: r.serverCpuPct,
            clientCpu: r.clientCpuPct,
            busy: cpu.machineBusyPct,
            others: cpu.othersPct,
          });
          log(`${label} ${fixed(gbps(r.bitsPerSecond), 2).padStart(7)} Gbit/s   ` +
            `proxy cpu ${cpuText(proxy).padEnd(36)} iperf3 client ${fixed(r.clientCpuPct, 0)}% server ${fixed(r.serverCpuPct, 0)}%   ` +
            `machine busy ${fixed(cpu.machineBusyPct, 0)}%, other processes ${fixed(cpu.othersPct, 0)}%`);
        }
      }
    }

    const load = `${loadAtStart} at start, ${loadavg()} at end`;
    log(`\nloadavg: ${load}`);
    const report = summaryMarkdown(opt, samples, skipped);
    log(`\n${report}`);
    if (opt.write) {
      const how = writeSection(SECTION, sectionMarkdown(opt, [...machine, ['loadavg', load]], report));
      log(`\n${RESULTS_FILE}: section '${SECTION}' ${how}`);
    }
  } finally {
    for (const t of running.values()) await stopProcess(t.handle);
    await stopProcess(server);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The per-stream-count tables, the fulcrum/haproxy ratios and the skip notes, as Markdown. */
function summaryMarkdown(opt, samples, skipped) {
  const parts = [];
  for (const streams of opt.streams) {
    const byTarget = samples.get(streams);
    const med = (name) => median((byTarget.get(name) ?? []).map((s) => s.bps));
    const rows = [];
    for (const name of opt.targets) {
      const list = byTarget.get(name) ?? [];
      if (list.length === 0) {
        rows.push([name, 'skipped', '', '', '', '0']);
        continue;
      }
      const g = summarize(list.map((s) => gbps(s.bps)));
      const proxyCpu = name === 'direct' ? '–' : `${fixed(median(list.map((s) => s.proxyCpu).filter(Number.isFinite)), 0)}%`;
      rows.push([name, fixed(g.median), `${fixed(g.min)}–${fixed(g.max)}`, ratio(med(name), med('direct')), proxyCpu, String(g.n)]);
    }
    parts.push(`**${streams} stream${streams > 1 ? 's' : ''}** (iperf3 -P ${streams})\n`);
    parts.push(markdownTable(['target', 'median Gbit/s', 'min–max', 'vs direct', 'proxy CPU', 'runs'], rows));
    if (opt.targets.includes('fulcrum') && opt.targets.includes('haproxy')) {
      parts.push(`\nfulcrum / haproxy: ${ratio(med('fulcrum'), med('haproxy'))}`);
    }
    if (opt.targets.includes('fulcrum') && opt.targets.includes('fulcrum-guarded')) {
      parts.push(`\nfulcrum-guarded / fulcrum: ${ratio(med('fulcrum-guarded'), med('fulcrum'))} (allow/deny and client_limits on; target within 5%)`);
    }
    parts.push('');
  }
  const four = samples.get(4);
  if (four) {
    const f = median((four.get('fulcrum') ?? []).map((s) => s.bps));
    const h = median((four.get('haproxy') ?? []).map((s) => s.bps));
    const verdict = Number.isFinite(f) && Number.isFinite(h)
      ? `${f >= h ? 'met' : 'NOT met'} (fulcrum ${fixed(gbps(f))} vs haproxy ${fixed(gbps(h))} Gbit/s)`
      : 'not measured (needs both fulcrum and haproxy)';
    parts.push(`Target, 4 streams: Fulcrum ≥ HAProxy: ${verdict}.\n`);
  }
  parts.push('Proxy CPU: median over rounds of the proxy process\'s CPU time during a measurement, % of one core (2 cores = 200%).');
  const others = [...samples.values()].flatMap((m) => [...m.values()].flat()).map((x) => x.others).filter(Number.isFinite);
  if (others.length) {
    parts.push(`Processes outside the benchmark used a median ${fixed(median(others), 0)}% of one core during measurements ` +
      `(max ${fixed(Math.max(...others), 0)}%); above ~10% the absolute numbers are depressed, the ratios less so.`);
  }
  if (skipped.size) parts.push('');
  for (const [name, reason] of skipped) parts.push(`- ${name} skipped: ${reason.split('\n')[0].replace(/; output:$/, '')}`);
  return parts.join('\n');
}

/** The RESULTS.md section: date, command, machine, tables, and the target check. */
function sectionMarkdown(opt, machine, report) {
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  return [
    `## TCP throughput (bench/tcp-throughput.mjs)`,
    ``,
    `iperf3 TCP, ${opt.duration} s per measurement after ${opt.omit} s omitted, ${opt.rounds} interleaved round(s), ` +
      `receiver's throughput. Proxies: one TCP service/frontend on 127.0.0.1 to one iperf3 server, ${PROXY_THREADS} threads each ` +
      `(Fulcrum \`workers: ${PROXY_THREADS}\`; HAProxy \`nbthread ${PROXY_THREADS}\`, \`option splice-auto\`).` +
      (opt.quick ? ' **Quick smoke run; not a measurement.**' : ''),
    ``,
    `Target: with 4 streams, Fulcrum ≥ HAProxy on the same run.`,
    ``,
    `- date: ${date}`,
    `- command: \`${commandLine()}\``,
    ...machine.map(([k, v]) => `- ${k}: ${v}`),
    ``,
    report,
  ].join('\n');
}

main().catch((err) => {
  process.stderr.write(`tcp-throughput: ${err.stack ?? err}\n`);
  process.exitCode = 1;
});
