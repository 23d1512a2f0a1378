#!/usr/bin/env node
// TCP round-trip latency of small messages: sockperf ping-pong (one
// connection, 64-byte messages, the next sent when the reply is back) to a
// sockperf server — straight (direct), through the floor proxy (recv/send and
// nothing else: the kernel's share), Fulcrum, HAProxy (`mode tcp`) and nginx
// (stream), 2 threads or worker processes each. Interleaved round by round
// with the order rotated; each load runs unconstrained and proxy-bound (each
// proxy held to --proxy-cpu % of one core by a cgroup quota).
//
//   node bench/tcp-latency.mjs [--duration 5] [--rounds 5] [--size 64] [--proxy-cpu 50]
//        [--targets direct,floor,fulcrum,kernel,haproxy,nginx] [--baseline DIR]
//        [--netns] [--spike PATH] [--pin CPUS] [--trace-workqueue] [--quick] [--write]
//
// Percentiles are sockperf's own (--full-rtt: the whole round trip, not half);
// the summary is the median over rounds of each run's percentile.
//
// --netns: client, proxies and sockperf server in three network namespaces
// joined by veth pairs (bench/lib/netns.mjs, made and removed by the run);
// the results go to their own section (tcp-latency-netns).
// --spike PATH with target `spike`: the sockmap spike's relay_sockmap (built
// by hand from ../shared/spikes/sockmap/, not in the repo) as a reference
// for `kernel` (loopback only).
// --pin CPUS: the sockperf client and server run under `taskset -c CPUS`
// (e.g. 0: both on one CPU, so the kernel's work for them runs there too).
// Every measurement also counts the kernel's work per round trip
// (bench/lib/kernel-work.mjs): kworker wake-ups (switch-ins), their CPU and
// their wait for a CPU, and softirq time: the sockmap relay's cost is there,
// not in the proxy process.
// --trace-workqueue: perf record of the workqueue tracepoints during each
// measurement (bench/lib/workqueue-trace.mjs): per round trip, the psock
// backlog items (sk_psock_backlog) and, per item, its wait from queued to
// started (a kworker's wake-up) and its run. Tracing slows the traced path:
// take latency figures from a run without it.

import { parseArgs } from 'node:util';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RUN_OPTIONS, intArg, runArgs, targetsArg } from './lib/args.mjs';
import { endRun, openProxyBudget, proxyBoundNote, proxyCpuText, runInterleaved, withProxyBound } from './lib/interleaved.mjs';
import { otherWorkNote } from './lib/cpu.mjs';
import { installCleanup, onInterrupt, runCommandWithCpu, startProcess, which } from './lib/proc.mjs';
import { freePorts, waitForListen } from './lib/net.mjs';
import { ratio, fixed, median, percentile } from './lib/stats.mjs';
import { markdownTable } from './lib/table.mjs';
import { writeRunSection, RESULTS_FILE } from './lib/results.mjs';
import { machineInfo, commandLine } from './lib/machine.mjs';
import { PATHS, PATH_OPTIONS, pathsArg, pathVersions, startPaths } from './lib/targets.mjs';
import { openNetns, placement } from './lib/netns.mjs';
import { kernelWorkPer, kernelWorkSnapshot } from './lib/kernel-work.mjs';
import { startWorkqueueTrace, workqueueTraceProblem } from './lib/workqueue-trace.mjs';

const SECTION = 'tcp-latency';
const PROXY_THREADS = 2;
/** Target: Fulcrum's p99 round trip ≤ 0.8× HAProxy's in the same run. */
const TARGET_RATIO = 0.8;
// sockperf's percentile lines, by the name the report gives them.
const PERCENTILES = [['p50', '50.000'], ['p99', '99.000'], ['p99.9', '99.900']];

const log = (line = '') => process.stdout.write(`${line}\n`);
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

function options() {
  const { values } = parseArgs({
    options: {
      ...RUN_OPTIONS,
      size: { type: 'string', default: '64' },
      netns: { type: 'boolean', default: false },
      pin: { type: 'string' },
      'trace-workqueue': { type: 'boolean', default: false },
      ...PATH_OPTIONS,
    },
    strict: true,
  });
  return {
    ...runArgs(values, { duration: 5, rounds: 5, proxyThreads: PROXY_THREADS }),
    size: intArg('size', values.size, 14, 65000),
    netns: values.netns,
    pin: pinArg(values.pin),
    traceWorkqueue: values['trace-workqueue'],
    ...pathsArg(values, targetsArg),
  };
}

/** --pin: a CPU list for taskset (`0`, `0,1`, `0-1`). */
function pinArg(text) {
  if (text === undefined) return null;
  if (!/^\d+([,-]\d+)*$/.test(text)) throw new Error(`--pin: expected a CPU list such as 0 or 0,1, got '${text}'`);
  if (!which('taskset')) throw new Error('--pin needs taskset (util-linux)');
  return text;
}

/** `[cmd, args]` under `taskset -c CPUS` when pinned. */
const pinned = (opt, cmd, args) => (opt.pin ? ['taskset', ['-c', opt.pin, cmd, ...args]] : [cmd, args]);

async function startSockperfServer(port, opt, net) {
  const host = placement(net).serverAddr;
  const handle = startProcess('sockperf-server', ...pinned(opt, 'sockperf', ['server', '--tcp', '-i', host, '-p', String(port)]), { netns: net?.server });
  await waitForListen(port, { handle, host: net ? host : undefined });
  return handle;
}

/** One sockperf ping-pong run: resolves `{ p50, p99, 'p99.9', avg, messages, clientCpu }` (µs) or `{ error }`. */
async function measure(target, opt, net) {
  const args = ['ping-pong', '--tcp', '-i', target.host, '-p', String(target.port), '-m', String(opt.size), '-t', String(opt.duration), '--full-rtt'];
  const trace = opt.traceWorkqueue ? await startWorkqueueTrace(join(opt.dir, 'workqueue.data')) : null;
  const kernelBefore = kernelWorkSnapshot();
  const r = await runCommandWithCpu(...pinned(opt, 'sockperf', args), { timeoutMs: (opt.duration + 30) * 1000, netns: net?.client });
  const kernelAfter = kernelWorkSnapshot();
  const work = trace ? await trace.stop() : null;
  // sockperf colours some lines; drop the escape sequences before parsing.
  const text = (r.stdout + r.stderr).replace(/\x1b\[[0-9;]*m/g, '');
  const result = {};
  for (const [name, label] of PERCENTILES) {
    const m = new RegExp(`percentile ${label.replace('.', '\\.')} =\\s*([\\d.]+)`).exec(text);
    if (m) result[name] = Number(m[1]);
  }
  const avg = /avg-rtt=([\d.]+)/.exec(text);
  const observations = /Total (\d+) observations/.exec(text);
  if (r.code !== 0 || !avg || PERCENTILES.some(([name]) => !Number.isFinite(result[name]))) {
    const why = r.timedOut ? 'timed out' : r.error ? r.error.message : `exit ${r.code ?? r.signal}`;
    return { error: `sockperf ${why}: ${text.trim().split('\n').slice(-2).join(' | ')}` };
  }
  // sockperf's observations are its sampled round trips; its run time is opt.duration s (plus warm-up, not counted).
  const messages = Number(observations?.[1] ?? 0);
  const roundTrips = /RunTime=[\d.]+ sec; Warm up time=\d+ msec; SentMessages=(\d+)/.exec(text);
  const sent = Number(roundTrips?.[1] ?? messages);
  const kernel = kernelWorkPer(kernelBefore, kernelAfter, sent);
  const backlog = work && !work.error && sent > 0
    ? { backlogItems: work.items / sent, backlogWaitP50: percentile(work.waitUs, 50), backlogWaitP90: percentile(work.waitUs, 90), backlogRunP50: percentile(work.runUs, 50) }
    : {};
  if (work?.error) process.stdout.write(`  (workqueue trace: ${work.error})\n`);
  return { ...result, avg: Number(avg[1]), messages, clientCpu: (100 * r.cpuSeconds) / opt.duration, ...kernel, ...backlog };
}

async function main() {
  const opt = options();
  installCleanup();
  if (!which('sockperf')) throw new Error('sockperf is not installed (apt-get install sockperf)');
  const machine = machineInfo([{ label: 'sockperf', cmd: 'sockperf', args: ['--version'] }]);
  machine.push(...pathVersions(opt));
  const loadAtStart = loadavg();
  log(`command: ${commandLine()}`);
  for (const [k, v] of machine) log(`${k.padEnd(8)} ${v}`);
  const loads = withProxyBound([{ key: 'pp', label: `ping-pong ${opt.size} B` }], opt.proxyCpu);
  const net = opt.netns ? openNetns('lat') : null;
  const where = net ? net.describe : 'loopback (127.0.0.1)';
  if (opt.pin) machine.push(['pinning', `sockperf client and server under taskset -c ${opt.pin}`]);
  log(`plan: ${opt.rounds} round(s) x ${opt.targets.join(',')} x (${loads.map((l) => l.label).join('; ')}); ${opt.duration} s each; proxies with ${PROXY_THREADS} threads; ${where}`);

  if (opt.traceWorkqueue && workqueueTraceProblem()) throw new Error(`--trace-workqueue: ${workqueueTraceProblem()}`);
  if (opt.traceWorkqueue) machine.push(['tracing', 'perf record -a of the workqueue tracepoints during every measurement']);
  const ports = await freePorts(1 + PATHS.length);
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-bench-latency-'));
  opt.dir = dir;
  onInterrupt(() => rmSync(dir, { recursive: true, force: true }));
  let running = new Map();
  let skipped = new Map();
  const servers = [];
  let budget = null;
  try {
    servers.push(await startSockperfServer(ports[0], opt, net));
    ({ running, skipped } = await startPaths({ opt, dir, ports: ports.slice(1), backends: [ports[0]], threads: PROXY_THREADS, log, net }));
    budget = openProxyBudget('fulcrum-bench-latency', opt.proxyCpu, skipped, log);
    const samples = await runInterleaved({
      running,
      order: opt.targets,
      loads,
      rounds: opt.rounds,
      servers,
      budget,
      skipped,
      log,
      measure: (name, t) => measure(t, opt, net),
      describe: (name, load, s) => `${load.label.padEnd(28)} p50 ${fixed(s.p50, 1).padStart(7)} µs  p99 ${fixed(s.p99, 1).padStart(7)} µs  ` +
        `p99.9 ${fixed(s['p99.9'], 1).padStart(8)} µs  ${fixed(s.messages / opt.duration, 0)} round trips/s  ` +
        `proxy cpu ${proxyCpuText(s)}  server ${fixed(s.serverCpu, 0)}%  client ${fixed(s.clientCpu, 0)}%  machine ${fixed(s.busy, 0)}% busy  ` +
        `per round trip: kworker ${fixed(s.kworkerRuns, 2)} runs ${fixed(s.kworkerRunUs, 1)} µs cpu ${fixed(s.kworkerWaitUs, 1)} µs wait, softirq ${fixed(s.softirqUs, 1)} µs` +
        (s.backlogItems !== undefined ? `; psock backlog ${fixed(s.backlogItems, 2)} items, wait p50 ${fixed(s.backlogWaitP50, 1)} p90 ${fixed(s.backlogWaitP90, 1)} µs, run p50 ${fixed(s.backlogRunP50, 1)} µs` : ''),
    });
    const report = summary(opt, loads, samples, skipped);
    const load = `${loadAtStart} at start, ${loadavg()} at end`;
    log(`\n${report}\nloadavg: ${load}`);
    if (opt.write) {
      const section = SECTION + (net ? '-netns' : '') + (opt.pin ? '-pinned' : '') + (opt.targets.includes('spike') ? '-spike' : '') + (opt.traceWorkqueue ? '-traced' : '');
      const how = writeRunSection(section, [
        `## TCP round-trip latency${net ? ' across network namespaces' : ''}${opt.pin ? `, sockperf pinned to CPU ${opt.pin}` : ''}${opt.targets.includes('spike') ? ', with the sockmap spike' : ''}${opt.traceWorkqueue ? ', workqueue traced' : ''} (bench/tcp-latency.mjs)`,
        '',
        `sockperf ping-pong, one TCP connection, ${opt.size}-byte messages, ${opt.duration} s per measurement, ${opt.rounds} interleaved round(s), ` +
          `full round trip; one sockperf server; ${where}. Fulcrum \`workers: ${PROXY_THREADS}\` (fulcrum: \`relay: user\`, kernel: \`relay: kernel\`), HAProxy \`nbthread ${PROXY_THREADS}\` (\`mode tcp\`), ` +
          `nginx stream \`worker_processes ${PROXY_THREADS}\`.` +
          (opt.targets.includes('spike') ? ' spike: the sockmap spike\'s relay_sockmap (../shared/spikes/sockmap/, one thread), built in /tmp, not part of the repo.' : '') +
          (opt.quick ? ' **Quick smoke run; not a measurement.**' : ''),
        '',
        `Target: Fulcrum's p99 ≤ ${TARGET_RATIO}× HAProxy's.`,
        '',
      ], [...machine, ['loadavg', load]], report);
      log(`\n${RESULTS_FILE}: section '${section}' ${how}`);
    }
  } finally {
    await endRun({ running, servers, budget, dir });
    net?.close();
  }
}

function summary(opt, loads, samples, skipped) {
  const list = (name, load) => samples.get(`${name}/${load.key}`) ?? [];
  const med = (name, load, key) => median(list(name, load).map((s) => s[key]));
  const parts = [];
  for (const load of loads) {
    parts.push(`**${load.label}**${proxyBoundNote(load, opt.proxyCpu)}`, '');
    const rows = opt.targets.map((name) => {
      const l = list(name, load);
      if (l.length === 0) return [name, load.budget && name === 'direct' ? 'n/a' : 'skipped', '', '', '', '', '', '', '', '', '', ''];
      const proxy = l.map((s) => s.proxyCpu).filter(Number.isFinite);
      return [
        name,
        ...PERCENTILES.map(([key]) => fixed(med(name, load, key), 1)),
        ratio(med(name, load, 'p99'), med('haproxy', load, 'p99')),
        fixed(median(l.map((s) => s.messages / opt.duration)), 0),
        proxy.length ? `${fixed(median(proxy), 0)}%` : '–',
        `${fixed(median(l.map((s) => s.serverCpu)), 0)}% / ${fixed(median(l.map((s) => s.clientCpu)), 0)}%`,
        fixed(median(l.map((s) => s.kworkerRuns)), 2),
        `${fixed(median(l.map((s) => s.kworkerRunUs)), 1)} / ${fixed(median(l.map((s) => s.kworkerWaitUs)), 1)}`,
        fixed(median(l.map((s) => s.softirqUs)), 1),
        ...(opt.traceWorkqueue
          ? [fixed(median(l.map((s) => s.backlogItems)), 2),
              `${fixed(median(l.map((s) => s.backlogWaitP50)), 1)} / ${fixed(median(l.map((s) => s.backlogWaitP90)), 1)}`,
              fixed(median(l.map((s) => s.backlogRunP50)), 1)]
          : []),
        String(l.length),
      ];
    });
    parts.push(markdownTable(['target', 'p50 µs', 'p99 µs', 'p99.9 µs', 'p99 vs haproxy', 'round trips/s', 'proxy CPU', 'server / client CPU',
      'kworker runs / rt', 'kworker cpu / wait µs / rt', 'softirq µs / rt',
      ...(opt.traceWorkqueue ? ['backlog items / rt', 'item wait p50 / p90 µs', 'item run p50 µs'] : []), 'runs'], rows));
    parts.push('');
    const f = med('fulcrum', load, 'p99');
    const h = med('haproxy', load, 'p99');
    if (Number.isFinite(f) && Number.isFinite(h)) parts.push(`fulcrum / haproxy p99: ${ratio(f, h)} — target ≤ ${TARGET_RATIO}× ${f <= TARGET_RATIO * h ? 'met' : 'NOT met'}.`);
    for (const key of ['p50', 'p99']) {
      const k = med('kernel', load, key);
      const hk = med('haproxy', load, key);
      if (Number.isFinite(k) && Number.isFinite(hk)) parts.push(`kernel / haproxy ${key}: ${ratio(k, hk)} — target ≤ 0.5× ${k <= 0.5 * hk ? 'met' : 'NOT met'}.`);
    }
    const b = med('fulcrum-baseline', load, 'p99');
    if (Number.isFinite(f) && Number.isFinite(b)) parts.push(`fulcrum / fulcrum-baseline p99: ${ratio(f, b)}.`);
    for (const key of ['p50', 'p99']) {
      const k = med('kernel', load, key);
      const sp = med('spike', load, key);
      if (Number.isFinite(k) && Number.isFinite(sp)) parts.push(`kernel / spike ${key}: ${ratio(k, sp)} (Fulcrum's relay: kernel against the spike's relay_sockmap).`);
    }
    parts.push('');
  }
  parts.push('Round trip: sockperf --full-rtt percentiles (µs), median over rounds. CPU: median, % of one core: the proxy (all its threads and processes), the sockperf server / client. ' +
    'Per round trip (rt), medians: kworker runs = switch-ins of every kworker thread on the machine (/proc/PID/schedstat), their CPU time and their time runnable ' +
    'but waiting for a CPU; softirq = /proc/stat softirq time over all CPUs. Machine-wide, so other work adds a background: read it against direct.' +
    (opt.traceWorkqueue ? ' Backlog: sk_psock_backlog work items (the sockmap egress redirect\'s send, run by a kworker) per round trip, each item\'s wait from queued to started ' +
      '(its kworker\'s wake-up and wait for a CPU) and its run, medians over rounds of each run\'s percentiles; from perf record of the workqueue tracepoints, which slows the traced path.' : ''));
  const others = otherWorkNote([...samples.values()].flat().map((s) => s.others));
  if (others) parts.push(others);
  for (const [name, reason] of skipped) parts.push(`- ${name} skipped: ${reason}`);
  return parts.join('\n');
}

main().catch((err) => {
  process.stderr.write(`tcp-latency: ${err.stack ?? err}\n`);
  process.exitCode = 1;
});
