#!/usr/bin/env node
// New TCP connections per second: C concurrent clients, each in a loop of
// connect, 64-byte echo, close, for D seconds — straight to one echo backend
// (direct), through Fulcrum with balance leastconn and with maglev, and
// through HAProxy with balance leastconn, interleaved round by round with the
// order rotated. The load generator and the echo backends are small C
// programs (bench/tools/), built on first use, so Node is never the limit.
//
//   node bench/tcp-connrate.mjs [--duration 5] [--rounds 5] [--clients 50]
//        [--client-threads 1] [--backends 2] [--proxy-cpu 50]
//        [--targets direct,fulcrum-leastconn,fulcrum-maglev,haproxy-leastconn,fulcrum-guarded]
//        [--baseline DIR] [--syscalls] [--quick] [--write]
//
// Each measurement runs unconstrained and proxy-bound (--proxy-cpu P, default
// 50; 0 leaves it out): each proxy held to P% of one core by a cgroup quota
// (bench/lib/interleaved.mjs), so the rate measures the proxy, not the
// 2-core machine it shares with the load generator and the echo backends.
// --baseline DIR adds fulcrum-baseline: leastconn run by the checkout in DIR,
// for a same-run A/B of a change (fulcrum-guarded-baseline, asked for by
// name, is fulcrum-guarded run by that checkout).
// fulcrum-guarded (not in the default set): fulcrum-leastconn with an
// allow/deny list, client_limits far above what the clients do, and
// send_proxy: v2 to echo backends started with -x (they skip the header);
// the summary gives its ratio to fulcrum-leastconn in the same run.
// fulcrum-log (not in the default set): fulcrum-leastconn with the connection
// log on, JSON to a file (every other Fulcrum target runs with it off); the
// summary gives its ratio to fulcrum-leastconn (target: at least 0.95).
//
// The tools are compiled with `cc` into bench/.build/ (git-ignored) on first
// use and again whenever their source is newer than the binary.

import { endRun, openProxyBudget, proxyBoundNote, proxyCpuText, runInterleaved, withProxyBound } from './lib/interleaved.mjs';
import { RUN_OPTIONS, intArg, runArgs, targetsArg } from './lib/args.mjs';
import { cTool } from './lib/c-tools.mjs';
import { parseArgs } from 'node:util';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installCleanup, onInterrupt, runCommand, startProcess, which } from './lib/proc.mjs';
import { freePorts, waitForListen } from './lib/net.mjs';
import { otherWorkNote } from './lib/cpu.mjs';
import { summarize, ratio, fixed, median } from './lib/stats.mjs';
import { markdownTable } from './lib/table.mjs';
import { writeRunSection, RESULTS_FILE } from './lib/results.mjs';
import { machineInfo, commandLine } from './lib/machine.mjs';
import { GUARD_KEYS, startFulcrum, startHaproxy, fulcrumVersion, haproxyVersion } from './lib/proxies.mjs';
import { countSyscalls } from './lib/strace.mjs';

const SECTION = 'tcp-connrate';
const ALL_TARGETS = ['direct', 'fulcrum-leastconn', 'fulcrum-maglev', 'fulcrum-baseline', 'haproxy-leastconn', 'fulcrum-guarded', 'fulcrum-guarded-baseline', 'fulcrum-log', 'fulcrum-auto', 'kernel'];
const DEFAULT_TARGETS = ['direct', 'fulcrum-leastconn', 'fulcrum-maglev', 'haproxy-leastconn'];
const PROXY_THREADS = 2;
const PAYLOAD = 64;

const log = (line = '') => process.stdout.write(`${line}\n`);
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

function options() {
  const { values } = parseArgs({
    options: {
      ...RUN_OPTIONS,
      clients: { type: 'string', default: '50' },
      'client-threads': { type: 'string', default: '1' },
      backends: { type: 'string', default: '2' },
      targets: { type: 'string' },
      baseline: { type: 'string' },
      syscalls: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (!values.baseline && values.targets?.includes('-baseline')) throw new Error('a *-baseline target needs --baseline DIR');
  return {
    ...runArgs(values, { duration: 5, rounds: 5, proxyThreads: PROXY_THREADS }),
    clients: intArg('clients', values.clients, 1, 2000),
    clientThreads: intArg('client-threads', values['client-threads'], 1, 16),
    backends: intArg('backends', values.backends, 1, 16),
    targets: targetsArg(values.targets ?? [...DEFAULT_TARGETS, ...(values.baseline ? ['fulcrum-baseline'] : [])].join(','), ALL_TARGETS),
    baseline: values.baseline,
    syscalls: values.syscalls,
  };
}

async function startEcho(binary, port, extra = []) {
  const handle = startProcess('echo-server', binary, ['-p', String(port), '-t', '1', ...extra]);
  await waitForListen(port, { handle });
  return handle;
}

/** One measurement: connrate against `port`. Resolves its JSON result, or `{ error }`. */
async function measure(binary, port, opt) {
  const args = ['-p', String(port), '-c', String(opt.clients), '-t', String(opt.clientThreads), '-d', String(opt.duration), '-s', String(PAYLOAD)];
  const r = await runCommand(binary, args, { timeoutMs: (opt.duration + 20) * 1000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    const result = JSON.parse(line);
    if (r.code !== 0 || !Number.isFinite(result.rate)) throw new Error('bad result');
    return result;
  } catch {
    const why = r.timedOut ? 'timed out' : r.error ? r.error.message : `exit ${r.code ?? r.signal}`;
    return { error: `connrate ${why}: ${(r.stdout + r.stderr).trim().split('\n').slice(-3).join(' | ')}` };
  }
}

async function main() {
  const opt = options();
  installCleanup();
  const connrate = cTool('connrate');
  const echo = cTool('echo-server');
  const machine = machineInfo();
  machine.push(['haproxy', haproxyVersion() ?? 'not installed'], ['fulcrum', fulcrumVersion()]);
  if (opt.baseline) machine.push(['baseline', `${opt.baseline}: ${fulcrumVersion(opt.baseline)}`]);
  const loadAtStart = loadavg();
  log(`command: ${commandLine()}`);
  for (const [k, v] of machine) log(`${k.padEnd(8)} ${v}`);
  const loads = withProxyBound([{ key: 'rate', label: 'connect-echo-close' }], opt.proxyCpu);
  log(`plan: ${opt.rounds} round(s) x ${opt.targets.join(',')} x (${loads.map((l) => l.label).join('; ')}); ${opt.clients} clients, ${PAYLOAD}-byte echo, ${opt.duration} s each; ` +
    `${opt.backends} echo backends; ` +
    `connrate ${opt.clientThreads} thread(s); proxies with ${PROXY_THREADS} threads`);

  const ports = await freePorts(2 * opt.backends + ALL_TARGETS.length);
  const backendPorts = ports.slice(0, opt.backends);
  // fulcrum-guarded's backends read a PROXY header first (echo-server -x).
  const guardedPorts = ports.slice(opt.backends + ALL_TARGETS.length);
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-bench-'));
  onInterrupt(() => rmSync(dir, { recursive: true, force: true }));
  const running = new Map();
  const skipped = new Map();
  const servers = [];
  let budget = null;
  try {
    for (const port of backendPorts) servers.push(await startEcho(echo, port));
    if (opt.targets.some((t) => t.startsWith('fulcrum-guarded'))) for (const port of guardedPorts) servers.push(await startEcho(echo, port, ['-x']));
    // Fulcrum's balance is a parameter of the target: the same backends, one
    // service, only the algorithm differs.
    const listen = (name) => ports[opt.backends + ALL_TARGETS.indexOf(name)];
    const fulcrum = (name, balance, serviceKeys, root, backends = backendPorts, connectionLog = undefined) => async () => {
      const { handle } = await startFulcrum({
        dir, listenPort: listen(name), backends, workers: PROXY_THREADS, balance, serviceKeys, root, file: `${name}.yaml`, connectionLog,
      });
      return { port: listen(name), handle };
    };
    const starters = {
      direct: async () => ({ port: backendPorts[0], handle: null }),
      // relay: user (the user-space relay) unless the name says otherwise:
      // fulcrum-auto is relay: auto (the default), kernel is relay: kernel.
      'fulcrum-leastconn': fulcrum('fulcrum-leastconn', 'leastconn', ['relay: user']),
      'fulcrum-maglev': fulcrum('fulcrum-maglev', 'maglev', ['hash_key: five_tuple', 'relay: user']),
      'fulcrum-auto': fulcrum('fulcrum-auto', 'leastconn', ['relay: auto']),
      kernel: fulcrum('kernel', 'leastconn', ['relay: kernel']),
      'fulcrum-baseline': fulcrum('fulcrum-baseline', 'leastconn', [], opt.baseline),
      'fulcrum-guarded': fulcrum('fulcrum-guarded', 'leastconn', [...GUARD_KEYS, 'send_proxy: v2'], undefined, guardedPorts),
      'fulcrum-guarded-baseline': fulcrum('fulcrum-guarded-baseline', 'leastconn', [...GUARD_KEYS, 'send_proxy: v2'], opt.baseline, guardedPorts),
      'fulcrum-log': fulcrum('fulcrum-log', 'leastconn', [], undefined, backendPorts, join(dir, 'connections.log')),
      'haproxy-leastconn': async () => {
        const { handle } = await startHaproxy({ dir, listenPort: listen('haproxy-leastconn'), backends: backendPorts, threads: PROXY_THREADS, balance: 'leastconn' });
        return { port: listen('haproxy-leastconn'), handle };
      },
    };
    for (const name of opt.targets) {
      try {
        running.set(name, await starters[name]());
      } catch (err) {
        skipped.set(name, err.message.split('\n')[0]);
        log(`${name}: SKIPPED, ${err.message}`);
      }
    }

    budget = openProxyBudget('fulcrum-bench-connrate', opt.proxyCpu, skipped, log);
    const samples = await runInterleaved({
      running,
      order: opt.targets,
      loads,
      rounds: opt.rounds,
      servers,
      budget,
      skipped,
      log,
      measure: (name, t) => measure(connrate, t.port, opt),
      describe: (name, load, s) => `${load.label.padEnd(30)} ${fixed(s.rate, 0).padStart(7)} conn/s   p50 ${s.p50_us} µs  p99 ${s.p99_us} µs   ` +
        `errors ${s.errors}${s.errors ? ` ${JSON.stringify(s.errors_by)}` : ''}   proxy cpu ${proxyCpuText(s)}   ` +
        `connrate ${s.cpu_pct}%  echo ${fixed(s.serverCpu, 0)}%  machine ${fixed(s.busy, 0)}% busy`,
    });
    const load = `${loadAtStart} at start, ${loadavg()} at end`;
    // Syscalls per connection, after the timed rounds (strace slows its target).
    const syscalls = new Map();
    if (opt.syscalls) {
      for (const name of opt.targets) {
        const t = running.get(name);
        if (!t?.handle) continue;
        const counted = await countSyscalls(t.handle.pid, async () => (await measure(connrate, t.port, { ...opt, duration: 2 })).cycles,
          join(dir, `strace-${name}.txt`));
        syscalls.set(name, counted);
        log(`  ${name.padEnd(18)} syscalls: ${counted.error ?? `${fixed(counted.total / counted.units, 1)} per connection over ${counted.units}`}`);
      }
    }
    const report = summary(opt, loads, samples, skipped, syscalls);
    log(`\n${report}`);
    if (opt.write) {
      const how = writeRunSection(SECTION, [
        `## TCP connection rate (bench/tcp-connrate.mjs)`,
        ``,
        `${opt.clients} concurrent clients (bench/tools/connrate.c, ${opt.clientThreads} epoll thread(s), sources 127.0.0.2–17), each: connect, ${PAYLOAD}-byte echo, close; ` +
          `${opt.duration} s per measurement, ${opt.rounds} interleaved round(s); ${opt.backends} echo backends (bench/tools/echo-server.c). ` +
          `Fulcrum \`workers: ${PROXY_THREADS}\` (maglev: \`hash_key: five_tuple\`); HAProxy \`nbthread ${PROXY_THREADS}\`, \`balance leastconn\`.` +
          (opt.quick ? ' **Quick smoke run; not a measurement.**' : ''),
        ``,
        `Target: Fulcrum (leastconn and maglev) ≥ 1.3× HAProxy leastconn's connection rate, proxy-bound (each proxy held to ${opt.proxyCpu}% of one core).`,
        ``,
      ], [...machine, ['loadavg', load]], report);
      log(`\n${RESULTS_FILE}: section '${SECTION}' ${how}`);
    }
  } finally {
    await endRun({ running, servers, budget, dir });
  }
}

/** Total errors over a target's measurements, with the errno names: `12 (EADDRNOTAVAIL 12)`. */
function errorText(list) {
  const by = new Map();
  for (const s of list) for (const [k, v] of Object.entries(s.errors_by ?? {})) by.set(k, (by.get(k) ?? 0) + v);
  const total = list.reduce((n, s) => n + s.errors, 0);
  return total ? `${total} (${[...by].map(([k, v]) => `${k} ${v}`).join(', ')})` : '0';
}

function summary(opt, loads, samples, skipped, syscalls) {
  const parts = [];
  const fulcrums = ['fulcrum-leastconn', 'fulcrum-maglev'];
  for (const load of loads) {
    const list = (name) => samples.get(`${name}/${load.key}`) ?? [];
    const med = (name) => median(list(name).map((s) => s.rate));
    // Connections per second per core of proxy CPU: on a machine where the load
    // generator and backends share the cores with the proxy, the rate is bounded
    // by the whole machine's CPU, and this is what tells the proxies apart.
    const perCore = (name) => median(list(name).filter((s) => s.proxyCpu > 0).map((s) => s.rate / (s.proxyCpu / 100)));
    // CPU time per connection (µs), of the proxy and of the load generator plus
    // the echo backends: the machine's cores are shared by all three.
    const usPerConn = (name, pct) => median(list(name).filter((s) => Number.isFinite(pct(s))).map((s) => (pct(s) / 100) * 1e6 / s.rate));
    const proxyUs = (name) => usPerConn(name, (s) => s.proxyCpu);
    const restUs = (name) => usPerConn(name, (s) => s.cpu_pct + s.serverCpu);
    parts.push(`**${load.label}**${proxyBoundNote(load, opt.proxyCpu, ' (unconstrained)')}`, '');
    const rows = opt.targets.map((name) => {
      const l = list(name);
      if (l.length === 0) return [name, load.budget && name === 'direct' ? 'n/a' : 'skipped', '', '', '', '', '', '', '', '', '', '', '', ''];
      const r = summarize(l.map((s) => s.rate));
      const cpu = l.map((s) => s.proxyCpu).filter(Number.isFinite);
      const pct = (key) => `${fixed(median(l.map((s) => s[key])), 0)}%`;
      return [
        name,
        fixed(r.median, 0),
        `${fixed(r.min, 0)}–${fixed(r.max, 0)}`,
        fixed(median(l.map((s) => s.p50_us)), 0),
        fixed(median(l.map((s) => s.p99_us)), 0),
        ratio(med(name), med('haproxy-leastconn')),
        cpu.length ? `${fixed(median(cpu), 0)}%` : '–',
        cpu.length ? fixed(proxyUs(name), 1) : '–',
        fixed(perCore(name), 0),
        ratio(perCore(name), perCore('haproxy-leastconn')),
        pct('cpu_pct'),
        pct('serverCpu'),
        pct('busy'),
        errorText(l),
      ];
    });
    parts.push(markdownTable(['target', 'median conn/s', 'min–max', 'p50 µs', 'p99 µs', 'vs haproxy', 'proxy CPU', 'proxy CPU µs/conn', 'conn/s per proxy core', 'per core vs haproxy', 'connrate CPU', 'echo CPU', 'machine busy', 'errors'], rows));
    parts.push('');
    for (const name of fulcrums) {
      const f = med(name);
      const h = med('haproxy-leastconn');
      if (Number.isFinite(f) && Number.isFinite(h)) {
        parts.push(`${name} / haproxy-leastconn: ${ratio(f, h)}${load.budget ? ` — target 1.3× ${f >= 1.3 * h ? 'met' : 'NOT met'}` : ''}; per proxy core ${ratio(perCore(name), perCore('haproxy-leastconn'))}.`);
      }
    }
    const guarded = med('fulcrum-guarded');
    const plain = med('fulcrum-leastconn');
    if (Number.isFinite(guarded) && Number.isFinite(plain)) {
      parts.push(`fulcrum-guarded / fulcrum-leastconn: ${ratio(guarded, plain)} (allow/deny, client_limits and send_proxy v2 on; target within 5%: ` +
        `${guarded >= 0.95 * plain ? 'met' : 'NOT met'}); per proxy core ${ratio(perCore('fulcrum-guarded'), perCore('fulcrum-leastconn'))}.`);
    }
    for (const name of ['fulcrum-auto', 'kernel']) {
      const relayed = med(name);
      if (!Number.isFinite(relayed) || !Number.isFinite(plain)) continue;
      const target = name === 'fulcrum-auto' ? `; target within 5%: ${relayed >= 0.95 * plain ? 'met' : 'NOT met'}` : '';
      parts.push(`${name} / fulcrum-leastconn (relay: user): ${ratio(relayed, plain)}${target}; proxy CPU per connection ${fixed(proxyUs(name), 1)} vs ${fixed(proxyUs('fulcrum-leastconn'), 1)} µs.`);
    }
    const logged = med('fulcrum-log');
    if (Number.isFinite(logged) && Number.isFinite(plain)) {
      parts.push(`fulcrum-log / fulcrum-leastconn: ${ratio(logged, plain)} (connection log on, JSON to a file, vs off; target at least 0.95: ` +
        `${logged >= 0.95 * plain ? 'met' : 'NOT met'}); proxy CPU per connection ${fixed(proxyUs('fulcrum-log'), 1)} vs ${fixed(proxyUs('fulcrum-leastconn'), 1)} µs.`);
    }
    for (const [name, base] of [['fulcrum-leastconn', 'fulcrum-baseline'], ['fulcrum-guarded', 'fulcrum-guarded-baseline']]) {
      if (Number.isFinite(med(base)) && Number.isFinite(med(name))) {
        parts.push(`${name} / ${base}: ${ratio(med(name), med(base))} (proxy CPU per connection ${fixed(proxyUs(name), 1)} vs ${fixed(proxyUs(base), 1)} µs).`);
      }
    }
    if (!load.budget) {
      // With the cores saturated, rate ≈ cores / (proxy + client + echo CPU per
      // connection); the client's and the backends' part does not depend on the proxy.
      const hTotal = proxyUs('haproxy-leastconn') + restUs('haproxy-leastconn');
      for (const name of fulcrums) {
        const rest = restUs(name);
        if (Number.isFinite(hTotal) && Number.isFinite(rest) && Number.isFinite(proxyUs(name))) {
          parts.push(`${name}: proxy ${fixed(proxyUs(name), 1)} µs CPU per connection, load generator + echo backends ${fixed(rest, 1)} µs ` +
            `(haproxy-leastconn: ${fixed(proxyUs('haproxy-leastconn'), 1)} + ${fixed(restUs('haproxy-leastconn'), 1)} µs); ` +
            `1.3× HAProxy's rate on a saturated machine needs the proxy at ≤ ${fixed(hTotal / 1.3 - rest, 1)} µs per connection.`);
        }
      }
    }
    parts.push('');
  }
  if (syscalls?.size) {
    parts.push('', 'Syscalls per proxied connection (`strace -c -f` on the proxy during one extra 2 s run after the rounds; counts only):', '');
    const rows = [...syscalls].map(([name, c]) => c.error ? [name, 'failed', c.error] : [
      name,
      fixed(c.total / c.units, 1),
      c.byName.filter(([, calls]) => calls / c.units >= 0.05)
        .map(([call, calls, errors]) => `${call} ${fixed(calls / c.units, 2)}${errors ? ` (${fixed(errors / c.units, 2)} failed)` : ''}`).join(', '),
    ]);
    parts.push(markdownTable(['target', 'syscalls/conn', 'by call (per connection)'], rows, ['l', 'r', 'l']), '');
  }
  parts.push('Latency: connect + echo per cycle, median over rounds of each run\'s percentile. CPU: median, % of one core ' +
    '(2 cores = 200%): the proxy, the load generator, all echo backends together; machine busy: % of all cores.');
  const others = otherWorkNote([...samples.values()].flat().map((s) => s.others));
  if (others) parts.push(others);
  for (const [name, reason] of skipped) parts.push(`- ${name} skipped: ${reason}`);
  return parts.join('\n');
}

main().catch((err) => {
  process.stderr.write(`tcp-connrate: ${err.stack ?? err}\n`);
  process.exitCode = 1;
});
