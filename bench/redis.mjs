#!/usr/bin/env node
// Redis through the proxies: redis-benchmark (C clients, one connection each,
// one request in flight per connection unless pipelined) against two
// redis-server backends — straight to one of them (direct), through Fulcrum,
// HAProxy (`mode tcp`) and nginx (stream), all round robin with 2 threads or
// worker processes — for SET, GET and GET pipelined 16 deep. Interleaved
// round by round with the order rotated; every load runs unconstrained and
// proxy-bound (each proxy held to --proxy-cpu % of one core by a cgroup
// quota, so the figure measures the proxy and not the 2-core machine it
// shares with redis-benchmark and the servers).
//
//   node bench/redis.mjs [--duration 4] [--rounds 5] [--clients 50] [--proxy-cpu 50]
//        [--tests get,set,get-p16] [--targets direct,fulcrum,haproxy,nginx]
//        [--baseline DIR] [--fulcrum-keys 'io_uring: off'] [--netns] [--quick] [--write]
//
// --netns: redis-benchmark, the proxies and the redis-servers in three
// network namespaces joined by veth pairs (bench/lib/netns.mjs, made and
// removed by the run); results in their own section (redis-netns).
// fulcrum-log (ask for it in --targets): fulcrum with the connection log on,
// JSON to a file; the summary gives its ratio to fulcrum (target at least 0.98).
// --baseline DIR adds the target fulcrum-baseline: the same config run by the
// checkout in DIR (built), for a same-run A/B of a change.
// --fulcrum-keys adds top-level YAML lines to the fulcrum target's config
// (';'-separated), to compare a setting against the baseline.

import { parseArgs } from 'node:util';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { RUN_OPTIONS, intArg, runArgs, targetsArg } from './lib/args.mjs';
import { endRun, openProxyBudget, proxyBoundNote, proxyCpuText, runInterleaved, withProxyBound } from './lib/interleaved.mjs';
import { otherWorkNote } from './lib/cpu.mjs';
import { installCleanup, onInterrupt, runCommandWithCpu, startProcess, which } from './lib/proc.mjs';
import { freePorts, waitForListen } from './lib/net.mjs';
import { summarize, ratio, fixed, median } from './lib/stats.mjs';
import { markdownTable } from './lib/table.mjs';
import { writeRunSection, RESULTS_FILE } from './lib/results.mjs';
import { machineInfo, commandLine } from './lib/machine.mjs';
import { PATHS, PATH_OPTIONS, pathsArg, pathVersions, startPaths } from './lib/targets.mjs';
import { openNetns, placement } from './lib/netns.mjs';
import { kernelWorkPer, kernelWorkSnapshot } from './lib/kernel-work.mjs';

const SECTION = 'redis';
const TESTS = {
  get: { label: 'GET', args: ['-t', 'get'] },
  set: { label: 'SET', args: ['-t', 'set'] },
  'get-p16': { label: 'GET -P 16', args: ['-t', 'get', '-P', '16'] },
};
const PROXY_THREADS = 2;
const BACKENDS = 2;
// Keys spread over this many names (-r), written by SET before GET reads them.
const KEYSPACE = 100_000;
/** Target: Fulcrum's GET rate ≥ 1.2× HAProxy's in the same run. */
const TARGET_RATIO = 1.2;

const log = (line = '') => process.stdout.write(`${line}\n`);
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

function options() {
  const { values } = parseArgs({
    options: {
      ...RUN_OPTIONS,
      clients: { type: 'string', default: '50' },
      tests: { type: 'string', default: 'get,set,get-p16' },
      netns: { type: 'boolean', default: false },
      ...PATH_OPTIONS,
    },
    strict: true,
  });
  const tests = values.tests.split(',').map((s) => s.trim());
  for (const t of tests) if (!TESTS[t]) throw new Error(`--tests: expected some of ${Object.keys(TESTS).join(',')}, got '${t}'`);
  return {
    ...runArgs(values, { duration: 4, rounds: 5, proxyThreads: PROXY_THREADS }),
    clients: intArg('clients', values.clients, 1, 1000),
    tests,
    netns: values.netns,
    ...pathsArg(values, targetsArg),
  };
}

async function startRedis(port, net) {
  const bin = which('redis-server');
  if (!bin) throw new Error('redis-server is not installed (apt-get install redis-server)');
  const host = placement(net).serverAddr;
  // protected-mode off: in a namespace the clients are not on loopback.
  const handle = startProcess('redis-server', bin, ['--port', String(port), '--bind', host, '--protected-mode', 'no', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], { netns: net?.server });
  await waitForListen(port, { handle, host: net ? host : undefined });
  return handle;
}

/**
 * redis-benchmark for about opt.duration seconds: the request count is sized
 * from this target's last rate under this load (a 1 s guess the first time).
 */
function requestCount(rates, key, opt, pipelined) {
  const rate = rates.get(key) ?? (pipelined ? 200_000 : 40_000);
  return Math.max(10_000, Math.round(rate * opt.duration));
}

async function measure(host, port, test, opt, rates, key, net) {
  const bin = which('redis-benchmark');
  const n = requestCount(rates, key, opt, test.args.includes('-P'));
  const args = ['-h', host, '-p', String(port), '-c', String(opt.clients), '-n', String(n), '-r', String(KEYSPACE), '--csv', ...test.args];
  const kernelBefore = kernelWorkSnapshot();
  const r = await runCommandWithCpu(bin, args, { timeoutMs: (opt.duration * 4 + 30) * 1000, netns: net?.client });
  const kernel = kernelWorkPer(kernelBefore, kernelWorkSnapshot(), n);
  // "GET","84388.19","0.309","0.120","0.287","0.479","0.615","1.591"
  const row = r.stdout.split('\n').map((l) => l.replaceAll('"', '').split(',')).find((cols) => cols.length >= 8 && Number.isFinite(Number(cols[1])));
  if (r.code !== 0 || !row) {
    const why = r.timedOut ? 'timed out' : r.error ? r.error.message : `exit ${r.code ?? r.signal}`;
    return { error: `redis-benchmark ${why}: ${(r.stdout + r.stderr).trim().split('\n').slice(-2).join(' | ')}` };
  }
  const rate = Number(row[1]);
  rates.set(key, rate);
  return { rate, requests: n, p50: Number(row[4]), p99: Number(row[6]), clientCpu: (100 * r.cpuSeconds) / (n / rate), ...kernel };
}

async function main() {
  const opt = options();
  installCleanup();
  if (!which('redis-benchmark')) throw new Error('redis-benchmark is not installed (apt-get install redis-tools)');
  const machine = machineInfo([{ label: 'redis', cmd: 'redis-server', args: ['--version'] }]);
  machine.push(...pathVersions(opt));
  const loadAtStart = loadavg();
  log(`command: ${commandLine()}`);
  for (const [k, v] of machine) log(`${k.padEnd(8)} ${v}`);
  const loads = withProxyBound(opt.tests.map((key) => ({ key, label: TESTS[key].label, test: TESTS[key] })), opt.proxyCpu);
  const net = opt.netns ? openNetns('redis') : null;
  const where = net ? net.describe : 'loopback (127.0.0.1)';
  log(`plan: ${opt.rounds} round(s) x ${opt.targets.join(',')} x (${loads.map((l) => l.label).join('; ')}); ` +
    `${opt.clients} clients, ~${opt.duration} s each; ${BACKENDS} redis-server backends; proxies with ${PROXY_THREADS} threads; ${where}`);

  const ports = await freePorts(BACKENDS + PATHS.length);
  const backendPorts = ports.slice(0, BACKENDS);
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-bench-redis-'));
  onInterrupt(() => rmSync(dir, { recursive: true, force: true }));
  let running = new Map();
  let skipped = new Map();
  const servers = [];
  let budget = null;
  try {
    for (const port of backendPorts) servers.push(await startRedis(port, net));
    ({ running, skipped } = await startPaths({ opt, dir, ports: ports.slice(BACKENDS), backends: backendPorts, threads: PROXY_THREADS, log, net }));
    budget = openProxyBudget('fulcrum-bench-redis', opt.proxyCpu, skipped, log);
    // GET reads keys SET wrote: fill the keyspace on both backends first.
    for (const port of backendPorts) await measure(placement(net).serverAddr, port, TESTS.set, { ...opt, duration: 1 }, new Map([['fill', KEYSPACE * 2]]), 'fill', net);
    const rates = new Map();
    const samples = await runInterleaved({
      running,
      order: opt.targets,
      loads,
      rounds: opt.rounds,
      servers,
      budget,
      skipped,
      log,
      measure: (name, t, load) => measure(t.host, t.port, load.test, opt, rates, `${name}/${load.key}`, net),
      describe: (name, load, s) => `${load.label.padEnd(22)} ${fixed(s.rate, 0).padStart(8)} req/s  p50 ${fixed(s.p50, 3)} ms  p99 ${fixed(s.p99, 3)} ms  ` +
        `proxy cpu ${proxyCpuText(s)}  redis ${fixed(s.serverCpu, 0)}%  client ${fixed(s.clientCpu, 0)}%  machine ${fixed(s.busy, 0)}% busy  ` +
        `per request: kworker ${fixed(s.kworkerRunUs, 1)} µs, softirq ${fixed(s.softirqUs, 1)} µs`,
    });
    const report = summary(opt, loads, samples, skipped);
    const load = `${loadAtStart} at start, ${loadavg()} at end`;
    log(`\n${report}\nloadavg: ${load}`);
    if (opt.write) {
      const section = SECTION + (net ? '-netns' : '');
      const how = writeRunSection(section, [
        `## Redis through the proxies${net ? ' across network namespaces' : ''} (bench/redis.mjs)`,
        '',
        `redis-benchmark, ${opt.clients} connections, ~${opt.duration} s per measurement, ${opt.rounds} interleaved round(s); ${where}; ${BACKENDS} redis-server backends, ` +
          `round robin; Fulcrum \`workers: ${PROXY_THREADS}\`, HAProxy \`nbthread ${PROXY_THREADS}\` (\`mode tcp\`, \`option splice-auto\`), ` +
          `nginx stream \`worker_processes ${PROXY_THREADS}\`.` + (opt.quick ? ' **Quick smoke run; not a measurement.**' : ''),
        '',
        `Target: Fulcrum's GET rate ≥ ${TARGET_RATIO}× HAProxy's.`,
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
  const med = (name, load) => median(list(name, load).map((s) => s.rate));
  // CPU time per request (µs): what the proxy spends on one request.
  const usPerRequest = (name, load) => median(list(name, load).filter((s) => s.proxyCpu > 0).map((s) => (s.proxyCpu / 100) * 1e6 / s.rate));
  // The whole machine's CPU time per request (µs): with the kernel relay the
  // proxy's own CPU is no longer the cost (kworkers and softirq do its work),
  // so paths are compared on everything the machine spent.
  const cores = availableParallelism();
  const machineUs = (name, load) => median(list(name, load).filter((s) => Number.isFinite(s.busy)).map((s) => (s.busy / 100) * cores * 1e6 / s.rate));
  const parts = [];
  for (const load of loads) {
    parts.push(`**${load.label}**${proxyBoundNote(load, opt.proxyCpu)}`, '');
    const rows = opt.targets.map((name) => {
      const l = list(name, load);
      if (l.length === 0) return [name, load.budget && name === 'direct' ? 'n/a' : 'skipped', '', '', '', '', '', '', '', '', '', ''];
      const r = summarize(l.map((s) => s.rate));
      const proxy = l.map((s) => s.proxyCpu).filter(Number.isFinite);
      return [
        name,
        fixed(r.median, 0),
        `${fixed(r.min, 0)}–${fixed(r.max, 0)}`,
        fixed(median(l.map((s) => s.p50)), 3),
        fixed(median(l.map((s) => s.p99)), 3),
        ratio(med(name, load), med('haproxy', load)),
        proxy.length ? `${fixed(median(proxy), 0)}%` : '–',
        proxy.length ? fixed(usPerRequest(name, load), 1) : '–',
        fixed(machineUs(name, load), 1),
        `${fixed(median(l.map((s) => s.kworkerRunUs)), 1)} / ${fixed(median(l.map((s) => s.softirqUs)), 1)}`,
        `${fixed(median(l.map((s) => s.serverCpu)), 0)}% / ${fixed(median(l.map((s) => s.clientCpu)), 0)}%`,
        String(l.length),
      ];
    });
    parts.push(markdownTable(['target', 'median req/s', 'min–max', 'p50 ms', 'p99 ms', 'vs haproxy', 'proxy CPU', 'proxy µs/req', 'machine µs/req',
      'kworker / softirq µs/req', 'redis / client CPU', 'runs'], rows));
    parts.push('');
    const f = med('fulcrum', load);
    const h = med('haproxy', load);
    if (Number.isFinite(f) && Number.isFinite(h)) {
      const judged = load.test === TESTS.get ? ` — target ${TARGET_RATIO}× ${f >= TARGET_RATIO * h ? 'met' : 'NOT met'}` : '';
      parts.push(`fulcrum / haproxy: ${ratio(f, h)}${judged}.`);
    }
    const k = med('kernel', load);
    if (Number.isFinite(k) && Number.isFinite(h)) {
      const judged = load.test === TESTS.get && load.budget ? ` — target 1.3× ${k >= 1.3 * h ? 'met' : 'NOT met'}` : '';
      parts.push(`kernel / haproxy: ${ratio(k, h)}${judged}.`);
    }
    if (Number.isFinite(k) && Number.isFinite(f)) {
      const cpu = machineUs('kernel', load) / machineUs('fulcrum', load);
      parts.push(`kernel / fulcrum (relay: user): ${ratio(k, f)} req/s; whole-machine CPU per request ${fixed(cpu, 2)}× (target ≤ 0.85: ${cpu <= 0.85 ? 'met' : 'NOT met'}).`);
    }
    const logged = med('fulcrum-log', load);
    if (Number.isFinite(f) && Number.isFinite(logged)) {
      parts.push(`fulcrum-log / fulcrum: ${ratio(logged, f)} (connection log on, JSON to a file, vs off; target at least 0.98: ${logged >= 0.98 * f ? 'met' : 'NOT met'}).`);
    }
    const b = med('fulcrum-baseline', load);
    if (Number.isFinite(f) && Number.isFinite(b)) parts.push(`fulcrum / fulcrum-baseline: ${ratio(f, b)} (per-request proxy CPU ${fixed(usPerRequest('fulcrum', load), 1)} vs ${fixed(usPerRequest('fulcrum-baseline', load), 1)} µs).`);
    parts.push('');
  }
  parts.push('CPU: median, % of one core (2 cores = 200%): the proxy (all its threads and processes), both redis-servers together, redis-benchmark. ' +
    'Proxy µs/req: the proxy\'s CPU time per request. Machine µs/req: every core\'s busy time (kworkers and softirq included) per request. ' +
    'Kworker / softirq µs/req: the CPU time of every kworker thread (/proc/PID/schedstat) and the softirq time (/proc/stat), machine-wide, per request: the sockmap relay\'s work is there. ' +
    'Latency: redis-benchmark\'s own percentiles, median over rounds.');
  const others = otherWorkNote([...samples.values()].flat().map((s) => s.others));
  if (others) parts.push(others);
  for (const [name, reason] of skipped) parts.push(`- ${name} skipped: ${reason}`);
  return parts.join('\n');
}

main().catch((err) => {
  process.stderr.write(`redis: ${err.stack ?? err}\n`);
  process.exitCode = 1;
});
