#!/usr/bin/env node
// TCP throughput with iperf3: straight to the server (direct), through
// Fulcrum, and through HAProxy, with 1 and 4 parallel streams.
//
// Targets are measured interleaved (each round visits every target, the order
// rotated by one each round) so that the noise of a small shared machine hits
// all of them alike; the summary is the median over rounds. A target that
// cannot start (not built, not installed) is skipped with the reason.
//
// Each measurement runs unconstrained and proxy-bound (--proxy-cpu P, default
// 50; 0 leaves it out): each proxy, all its processes and threads, held to P%
// of one core by a cgroup quota (bench/lib/interleaved.mjs), so the figure
// measures the proxy, not the 2-core machine it shares with iperf3. direct
// has no proxy and is measured unconstrained only.
//
//   node bench/tcp-throughput.mjs [--duration 5] [--rounds 5] [--streams 1,4]
//        [--targets direct,fulcrum,haproxy] [--omit 1] [--proxy-cpu 50]
//        [--baseline DIR] [--quick] [--write]
//
// --baseline DIR adds fulcrum-baseline: Fulcrum run by the checkout in DIR
// (built), for a same-run A/B of a change.
//
// fulcrum-guarded (not in the default set): fulcrum with allow/deny and
// client_limits far above what iperf3 does; the summary gives its ratio to
// fulcrum. Without send_proxy: iperf3 cannot read a PROXY header (the header
// is a per-connection cost, which tcp-connrate's fulcrum-guarded measures).

import { endRun, openProxyBudget, proxyBoundNote, runInterleaved, withProxyBound } from './lib/interleaved.mjs';
import { intArg, targetsArg } from './lib/args.mjs';
import { parseArgs } from 'node:util';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installCleanup, onInterrupt, stopProcess } from './lib/proc.mjs';
import { freePorts } from './lib/net.mjs';
import { otherWorkNote } from './lib/cpu.mjs';
import { summarize, ratio, fixed, median } from './lib/stats.mjs';
import { markdownTable } from './lib/table.mjs';
import { writeRunSection, RESULTS_FILE } from './lib/results.mjs';
import { machineInfo, commandLine } from './lib/machine.mjs';
import { startIperfServer, restartIperfServer, runIperfTcp, iperf3Version } from './lib/iperf3.mjs';
import { GUARD_KEYS, startFulcrum, startHaproxy, fulcrumVersion, haproxyVersion } from './lib/proxies.mjs';

const SECTION = 'tcp-throughput';
const DEFAULT_TARGETS = ['direct', 'fulcrum', 'haproxy'];
const ALL_TARGETS = [...DEFAULT_TARGETS, 'fulcrum-guarded', 'fulcrum-baseline', 'fulcrum-auto', 'kernel'];
/** Proxy worker threads: one per core on the 2-core reference machine, the same for both proxies. */
const PROXY_THREADS = 2;

function usage(message) {
  if (message) process.stderr.write(`tcp-throughput: ${message}\n`);
  process.stderr.write(
    'usage: node bench/tcp-throughput.mjs [--duration S] [--rounds N] [--omit S] [--streams 1,4]\n' +
      '                                     [--targets direct,fulcrum,haproxy] [--proxy-cpu P] [--baseline DIR] [--quick] [--write]\n' +
      '  --baseline DIR adds fulcrum-baseline: Fulcrum run by the (built) checkout in DIR\n' +
      '  --proxy-cpu P  also measure each target proxy-bound: the proxy held to P% of one core\n' +
      '                 by a cgroup quota (default 50; 0 = unconstrained only)\n',
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
        targets: { type: 'string' },
        'proxy-cpu': { type: 'string', default: '50' },
        baseline: { type: 'string' },
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
    const targets = targetsArg(values.targets ?? [...DEFAULT_TARGETS, ...(values.baseline ? ['fulcrum-baseline'] : [])].join(','), ALL_TARGETS);
    if (targets.includes('fulcrum-baseline') && !values.baseline) throw new Error('fulcrum-baseline needs --baseline DIR');
    const proxyCpu = intArg('proxy-cpu', values['proxy-cpu'], 0, 100 * PROXY_THREADS);
    return { duration, rounds, omit, streams, targets, proxyCpu, baseline: values.baseline, quick: values.quick, write: values.write };
  } catch (err) {
    usage(err.message);
  }
}

const gbps = (bps) => bps / 1e9;
/** 1/5/15-minute load averages: other work on the machine skews every target, so it is recorded. */
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const log = (line = '') => process.stdout.write(`${line}\n`);

/** `73% (fulcrum-w0 50, fulcrum-w1 23)`: the proxy's CPU and its busy threads', for the per-measurement lines. */
function cpuText(sample) {
  if (sample.proxyCpu === undefined) return '–';
  const threads = sample.proxyThreads.filter((t) => t.pct >= 1).slice(0, 4).map((t) => `${t.comm} ${t.pct.toFixed(0)}`);
  return `${sample.proxyCpu.toFixed(0)}% (${threads.join(', ') || 'no thread above 1%'})`;
}

/** The loads: each stream count once unconstrained and, with --proxy-cpu > 0, once proxy-bound. */
function throughputLoads(opt) {
  const base = opt.streams.map((streams) => ({ key: `P${streams}`, label: `${streams} stream${streams > 1 ? 's' : ''}`, streams }));
  return withProxyBound(base, opt.proxyCpu);
}

async function main() {
  const opt = options();
  installCleanup();

  const machine = machineInfo();
  const iperfVer = iperf3Version();
  const haproxyVer = haproxyVersion();
  machine.push(['iperf3', iperfVer ?? 'not installed'], ['haproxy', haproxyVer ?? 'not installed'], ['fulcrum', fulcrumVersion()]);
  if (opt.baseline) machine.push(['baseline', `${opt.baseline}: ${fulcrumVersion(opt.baseline)}`]);

  const loadAtStart = loadavg();
  log(`command: ${commandLine()}`);
  for (const [k, v] of machine) log(`${k.padEnd(8)} ${v}`);
  log(`loadavg  ${loadAtStart} (at start)`);
  const loads = throughputLoads(opt);
  log(`plan: ${opt.rounds} round(s) x targets ${opt.targets.join(',')} x (${loads.map((l) => l.label).join('; ')}); ` +
    `iperf3 -t ${opt.duration} -O ${opt.omit} each; proxies with ${PROXY_THREADS} threads`);
  if (!iperfVer) throw new Error('iperf3 is not installed (apt-get install iperf3)');

  const [serverPort, fulcrumPort, haproxyPort, guardedPort, baselinePort, autoPort, kernelPort] = await freePorts(7);
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-bench-'));
  onInterrupt(() => rmSync(dir, { recursive: true, force: true }));
  /** name -> { port, handle? } for targets that are up. */
  const running = new Map();
  /** name -> reason, for targets left out. */
  const skipped = new Map();
  // The iperf3 server, replaced in place when restarted (runInterleaved reads it per measurement).
  const servers = [];
  let budget = null;

  try {
    servers[0] = await startIperfServer(serverPort);
    log(`iperf3 server: pid ${servers[0].pid}, 127.0.0.1:${serverPort}`);

    for (const name of opt.targets) {
      if (name === 'direct') {
        running.set(name, { port: serverPort, handle: null });
        continue;
      }
      const start = name === 'haproxy' ? startHaproxy : startFulcrum;
      const port = { fulcrum: fulcrumPort, haproxy: haproxyPort, 'fulcrum-guarded': guardedPort, 'fulcrum-baseline': baselinePort, 'fulcrum-auto': autoPort, kernel: kernelPort }[name];
      // relay: user (the user-space relay) unless the name says otherwise.
      const relay = { 'fulcrum-auto': 'auto', kernel: 'kernel' }[name] ?? 'user';
      const guard = name === 'haproxy' ? {} : { serviceKeys: [`relay: ${relay}`], file: `${name}.yaml` };
      if (name === 'fulcrum-guarded') guard.serviceKeys?.push(...GUARD_KEYS);
      if (name === 'fulcrum-baseline') Object.assign(guard, { root: opt.baseline, serviceKeys: [] });
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
        servers[0] = await restartIperfServer(servers[0], serverPort);
      }
    }

    budget = openProxyBudget('fulcrum-bench-throughput', opt.proxyCpu, skipped, log);
    const samples = await runInterleaved({
      running,
      order: opt.targets,
      loads,
      rounds: opt.rounds,
      servers,
      budget,
      skipped,
      log,
      measure: async (name, t, load) => {
        const r = await runIperfTcp({ port: t.port, seconds: opt.duration, omit: opt.omit, streams: load.streams });
        if (!r.ok) return { error: r.error };
        return { bps: r.bitsPerSecond, clientCpu: r.clientCpuPct, iperfServerCpu: r.serverCpuPct };
      },
      // The server may still be waiting on the failed client (bench/lib/iperf3.mjs).
      afterFailure: async () => {
        servers[0] = await restartIperfServer(servers[0], serverPort);
      },
      describe: (name, load, x) => `${load.label.padEnd(22)} ${fixed(gbps(x.bps), 2).padStart(7)} Gbit/s   ` +
        `proxy cpu ${cpuText(x).padEnd(36)} iperf3 client ${fixed(x.clientCpu, 0)}% server ${fixed(x.iperfServerCpu, 0)}%   ` +
        `machine busy ${fixed(x.busy, 0)}%, other processes ${fixed(x.others, 0)}%`,
    });

    const load = `${loadAtStart} at start, ${loadavg()} at end`;
    log(`\nloadavg: ${load}`);
    const report = summaryMarkdown(opt, loads, samples, skipped);
    log(`\n${report}`);
    if (opt.write) {
      const how = writeRunSection(SECTION, sectionIntro(opt), [...machine, ['loadavg', load]], report);
      log(`\n${RESULTS_FILE}: section '${SECTION}' ${how}`);
    }
  } finally {
    await endRun({ running, servers, budget, dir });
  }
}

/**
 * The tables, one per load (stream count, unconstrained then proxy-bound),
 * with the fulcrum/haproxy and fulcrum-guarded/fulcrum ratios of each, the
 * 4-stream target check and the skip notes, as Markdown.
 */
function summaryMarkdown(opt, loads, samples, skipped) {
  const list = (name, load) => samples.get(`${name}/${load.key}`) ?? [];
  const med = (name, load) => median(list(name, load).map((s) => s.bps));
  const bound = loads.some((l) => l.budget);
  const parts = [];
  for (const load of loads) {
    // direct has no proxy to bind: a proxy-bound figure is compared with its unconstrained one.
    const direct = loads.find((l) => !l.budget && l.streams === load.streams);
    const rows = [];
    for (const name of opt.targets) {
      const l = list(name, load);
      if (l.length === 0) {
        rows.push([name, load.budget && name === 'direct' ? 'n/a' : 'skipped', '', '', '', '0']);
        continue;
      }
      const g = summarize(l.map((s) => gbps(s.bps)));
      const proxy = l.map((s) => s.proxyCpu).filter(Number.isFinite);
      rows.push([name, fixed(g.median), `${fixed(g.min)}–${fixed(g.max)}`, ratio(med(name, load), med('direct', direct)),
        proxy.length ? `${fixed(median(proxy), 0)}%` : '–', String(g.n)]);
    }
    const how = proxyBoundNote(load, opt.proxyCpu, bound ? ' (unconstrained)' : '');
    parts.push(`**${load.label}** (iperf3 -P ${load.streams})${how}\n`);
    parts.push(markdownTable(['target', 'median Gbit/s', 'min–max', 'vs direct', 'proxy CPU', 'runs'], rows));
    if (opt.targets.includes('fulcrum') && opt.targets.includes('haproxy')) {
      parts.push(`\nfulcrum / haproxy: ${ratio(med('fulcrum', load), med('haproxy', load))}`);
    }
    if (opt.targets.includes('fulcrum') && opt.targets.includes('fulcrum-guarded')) {
      parts.push(`\nfulcrum-guarded / fulcrum: ${ratio(med('fulcrum-guarded', load), med('fulcrum', load))} (allow/deny and client_limits on; target within 5%)`);
    }
    for (const name of ['fulcrum-auto', 'kernel']) {
      if (!opt.targets.includes('fulcrum') || !opt.targets.includes(name)) continue;
      const r = med(name, load) / med('fulcrum', load);
      const target = name === 'fulcrum-auto' ? ` (target within 5%: ${r >= 0.95 ? 'met' : 'NOT met'})` : '';
      parts.push(`\n${name} / fulcrum (relay: user): ${ratio(med(name, load), med('fulcrum', load))}${target}`);
    }
    if (opt.targets.includes('fulcrum') && opt.targets.includes('fulcrum-baseline')) {
      parts.push(`\nfulcrum / fulcrum-baseline: ${ratio(med('fulcrum', load), med('fulcrum-baseline', load))}`);
    }
    parts.push('');
  }
  const fourStreams = (budget) => loads.find((l) => l.streams === 4 && l.budget === budget);
  const comparison = (load) => {
    const f = med('fulcrum', load);
    const h = med('haproxy', load);
    return Number.isFinite(f) && Number.isFinite(h) ? { f, h, text: `fulcrum ${fixed(gbps(f))} vs haproxy ${fixed(gbps(h))} Gbit/s` } : null;
  };
  const free = fourStreams(false);
  if (free) {
    const c = comparison(free);
    const verdict = c ? `${c.f >= c.h ? 'met' : 'NOT met'} (${c.text})` : 'not measured (needs both fulcrum and haproxy)';
    parts.push(`Target, 4 streams: Fulcrum ≥ HAProxy: ${verdict}.`);
    const c4 = fourStreams(true) && comparison(fourStreams(true));
    if (c4) parts.push(`Proxy-bound (each proxy held to ${opt.proxyCpu}% of one core), 4 streams, for information: ${c4.text} (${ratio(c4.f, c4.h)}).`);
    parts.push('');
  }
  parts.push('Proxy CPU: median over rounds of the proxy\'s CPU time during a measurement (all its processes and threads), % of one core (2 cores = 200%).' +
    (bound ? ' vs direct, proxy-bound: to direct\'s unconstrained figure with the same streams (direct has no proxy to hold).' : ''));
  const others = otherWorkNote([...samples.values()].flat().map((x) => x.others));
  if (others) parts.push(others);
  if (skipped.size) parts.push('');
  for (const [name, reason] of skipped) parts.push(`- ${name} skipped: ${reason.split('\n')[0].replace(/; output:$/, '')}`);
  return parts.join('\n');
}

/** The RESULTS.md section's title and what was measured (writeRunSection adds the date, command and machine). */
function sectionIntro(opt) {
  return [
    `## TCP throughput (bench/tcp-throughput.mjs)`,
    ``,
    `iperf3 TCP, ${opt.duration} s per measurement after ${opt.omit} s omitted, ${opt.rounds} interleaved round(s), ` +
      `receiver's throughput. Proxies: one TCP service/frontend on 127.0.0.1 to one iperf3 server, ${PROXY_THREADS} threads each ` +
      `(Fulcrum \`workers: ${PROXY_THREADS}\`; HAProxy \`nbthread ${PROXY_THREADS}\`, \`option splice-auto\`).` +
      (opt.proxyCpu > 0 ? ` Each measurement unconstrained and proxy-bound: each proxy held to ${opt.proxyCpu}% of one core by a cgroup quota.` : '') +
      (opt.quick ? ' **Quick smoke run; not a measurement.**' : ''),
    ``,
    `Target: with 4 streams, Fulcrum ≥ HAProxy on the same run (unconstrained).`,
    ``,
  ];
}

main().catch((err) => {
  process.stderr.write(`tcp-throughput: ${err.stack ?? err}\n`);
  process.exitCode = 1;
});
