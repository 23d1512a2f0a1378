#!/usr/bin/env node
// The bundled harness (`fulcrum bench`), measured two ways:
//
// reference: straight to a server on loopback, side by side with the tools it
//   stands in for, interleaved round by round: tcp-throughput (1 stream)
//   against iperf3 (target: at least 90% of iperf3's throughput) and
//   tcp-latency (64-byte ping-pong) against sockperf --tcp ping-pong
//   --full-rtt (target: median round trip within 10% of sockperf's).
// suite: the harness compares the direct path, Fulcrum, HAProxy 2.6
//   (mode tcp, option splice-auto) and nginx stream (TCP and UDP), each when
//   installed, on every workload, through `fulcrum bench compare` (targets
//   interleaved, order rotated each round), and writes the tables and an SVG chart.
//
//   node bench/harness.mjs [--part reference,suite] [--rounds N] [--duration S] [--quick] [--write]

import { parseArgs } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installCleanup, onInterrupt, startProcess, stopProcess, runCommand, which, firstLine } from './lib/proc.mjs';
import { freePorts, waitForListen } from './lib/net.mjs';
import { cpuSnapshot, cpuDelta } from './lib/cpu.mjs';
import { median, min, max } from './lib/stats.mjs';
import { markdownTable } from './lib/table.mjs';
import { writeSection, RESULTS_FILE } from './lib/results.mjs';
import { machineInfo, commandLine } from './lib/machine.mjs';
import { startIperfServer, restartIperfServer, runIperfTcp, iperf3Version } from './lib/iperf3.mjs';
import { REPO_ROOT, fulcrumConfig, fulcrumVersion, startHaproxy, haproxyVersion, startNginx, nginxVersion, outputTail } from './lib/proxies.mjs';

const CLI = join(REPO_ROOT, 'dist', 'cli.js');
const SVG_FILE = join(REPO_ROOT, 'bench', 'harness-suite.svg');
const TCP_WORKLOADS = ['tcp-throughput', 'tcp-connrate', 'tcp-latency'];
const UDP_WORKLOADS = ['udp-pps', 'udp-latency'];
/** Proxy worker threads/processes: one per core on the 2-core reference machine, the same for every proxy. */
const PROXY_THREADS = 2;
const MESSAGE_SIZE = 64;

function usage(message) {
  if (message) process.stderr.write(`harness: ${message}\n`);
  process.stderr.write('usage: node bench/harness.mjs [--part reference,suite] [--rounds N] [--duration S] [--quick] [--write]\n');
  process.exit(2);
}

function options() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        part: { type: 'string', default: 'reference,suite' },
        rounds: { type: 'string' },
        duration: { type: 'string' },
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
  const parts = values.part.split(',');
  for (const p of parts) if (p !== 'reference' && p !== 'suite') usage(`--part: expected reference and/or suite, got '${p}'`);
  const rounds = Number(values.rounds ?? (values.quick ? 1 : 5));
  const duration = Number(values.duration ?? (values.quick ? 1 : 4));
  if (!Number.isInteger(rounds) || rounds < 1) usage('--rounds: expected a positive integer');
  if (!(duration > 0)) usage('--duration: expected seconds > 0');
  return { parts, rounds, duration, write: values.write };
}

const log = (line = '') => process.stdout.write(`${line}\n`);
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const quoteArgs = (args) => args.map((a) => (/^[\w./:=,@+-]+$/.test(a) ? a : `'${a}'`)).join(' ');

/** `node dist/cli.js bench server` on 127.0.0.1:`port`. */
async function startBenchServer(port) {
  const handle = startProcess('fulcrum-bench-server', process.execPath, [CLI, 'bench', 'server', '-p', String(port), '-B', '127.0.0.1', '--threads', String(PROXY_THREADS)]);
  try {
    await waitForListen(port, { timeoutMs: 10000, handle });
  } catch (err) {
    await stopProcess(handle, 2000);
    throw new Error(`${err.message}; output:${outputTail(handle)}`);
  }
  return handle;
}

/** One `fulcrum bench client ... --json` run; resolves the report or `{ error }`. */
async function harnessClient(args, seconds) {
  const r = await runCommand(process.execPath, [CLI, 'bench', 'client', ...args, '--json'], { timeoutMs: seconds * 1000 + 30000 });
  try {
    return JSON.parse(r.stdout);
  } catch {
    return { error: `exit ${r.code}: ${(r.stderr || r.stdout).trim().split('\n').slice(-1)[0] ?? ''}` };
  }
}

/**
 * `sockperf ping-pong --tcp --full-rtt`: `{ p50Us, meanUs, p99Us }` or `{ error }`.
 * `noRdtsc`: time with clock_gettime (as fulcrum bench does) instead of the
 * TSC, whose calibrated frequency sockperf converts ticks with.
 */
async function sockperfPingPong(port, seconds, noRdtsc = false) {
  const args = ['ping-pong', '--tcp', '-i', '127.0.0.1', '-p', String(port), '-t', String(seconds), '-m', String(MESSAGE_SIZE), '--full-rtt', ...(noRdtsc ? ['--no-rdtsc'] : [])];
  const r = await runCommand('sockperf', args, { timeoutMs: seconds * 1000 + 20000 });
  const text = r.stdout + r.stderr;
  const percentile = (p) => Number(new RegExp(`percentile ${p} =\\s*([\\d.]+)`).exec(text)?.[1]);
  const mean = Number(/avg-rtt=([\d.]+)/.exec(text)?.[1]);
  const p50 = percentile('50.000');
  if (!Number.isFinite(p50)) return { error: `sockperf exit ${r.code}: ${text.trim().split('\n').slice(-1)[0]}` };
  return { p50Us: p50, meanUs: mean, p99Us: percentile('99.000') };
}

// ---------------------------------------------------------------- reference

async function referencePart({ rounds, duration }, dir) {
  const missing = ['iperf3', 'sockperf'].filter((tool) => !which(tool));
  if (missing.length) return { skipped: `${missing.join(' and ')} not installed (apt-get install iperf3 sockperf)` };
  const [benchPort, iperfPort, sockperfPort] = await freePorts(3);
  const bench = await startBenchServer(benchPort);
  let iperf = await startIperfServer(iperfPort);
  const sockperf = startProcess('sockperf-server', 'sockperf', ['server', '--tcp', '-i', '127.0.0.1', '-p', String(sockperfPort)]);
  await waitForListen(sockperfPort, { timeoutMs: 5000, handle: sockperf });
  const commands = [
    `node dist/cli.js bench server -p ${benchPort} -B 127.0.0.1 --threads ${PROXY_THREADS}`,
    `iperf3 -s -B 127.0.0.1 -p ${iperfPort}`,
    `sockperf server --tcp -i 127.0.0.1 -p ${sockperfPort}`,
    `iperf3 -c 127.0.0.1 -p ${iperfPort} -t ${duration} -O 0 -P 1 -J   # end.sum_received.bits_per_second`,
    `node dist/cli.js bench client 127.0.0.1:${benchPort} -w tcp-throughput -t ${duration} -P 1 --json   # primary.value`,
    `sockperf ping-pong --tcp -i 127.0.0.1 -p ${sockperfPort} -t ${duration} -m ${MESSAGE_SIZE} --full-rtt   # percentile 50.000`,
    `sockperf ping-pong --tcp -i 127.0.0.1 -p ${sockperfPort} -t ${duration} -m ${MESSAGE_SIZE} --full-rtt --no-rdtsc   # same, timed with clock_gettime`,
    `node dist/cli.js bench client 127.0.0.1:${benchPort} -w tcp-latency -t ${duration} -l ${MESSAGE_SIZE} --json   # summary.latency.p50Us`,
  ];
  const samples = { iperf3: [], harnessThroughput: [], sockperf: [], sockperfNoRdtsc: [], harnessLatency: [], sockperfMean: [], harnessMean: [] };
  try {
    for (let round = 0; round < rounds; round++) {
      const throughputOrder = round % 2 === 0 ? ['iperf3', 'harness'] : ['harness', 'iperf3'];
      for (const who of throughputOrder) {
        const before = cpuSnapshot([]);
        if (who === 'iperf3') {
          const r = await runIperfTcp({ port: iperfPort, seconds: duration, omit: 0, streams: 1 });
          if (r.ok) samples.iperf3.push(r.bitsPerSecond);
          else iperf = await restartIperfServer(iperf, iperfPort);
          log(`round ${round + 1} tcp-throughput iperf3   ${r.ok ? `${(r.bitsPerSecond / 1e9).toFixed(2)} Gbit/s` : r.error}  (machine ${cpuDelta(before, cpuSnapshot([])).machineBusyPct.toFixed(0)}% busy)`);
        } else {
          const r = await harnessClient([`127.0.0.1:${benchPort}`, '-w', 'tcp-throughput', '-t', String(duration), '-P', '1'], duration);
          if (!r.error) samples.harnessThroughput.push(r.primary.value);
          log(`round ${round + 1} tcp-throughput harness  ${r.error ?? `${(r.primary.value / 1e9).toFixed(2)} Gbit/s (counts agree: ${r.summary.countsAgree})`}  (machine ${cpuDelta(before, cpuSnapshot([])).machineBusyPct.toFixed(0)}% busy)`);
        }
      }
      const latencyTools = ['sockperf', 'sockperf-no-rdtsc', 'harness'];
      const latencyOrder = latencyTools.map((_, i) => latencyTools[(i + round) % latencyTools.length]);
      for (const who of latencyOrder) {
        const before = cpuSnapshot([]);
        if (who.startsWith('sockperf')) {
          const noRdtsc = who === 'sockperf-no-rdtsc';
          const r = await sockperfPingPong(sockperfPort, duration, noRdtsc);
          if (!r.error && noRdtsc) samples.sockperfNoRdtsc.push(r.p50Us);
          if (!r.error && !noRdtsc) {
            samples.sockperf.push(r.p50Us);
            samples.sockperfMean.push(r.meanUs);
          }
          log(`round ${round + 1} tcp-latency    ${who.padEnd(17)} ${r.error ?? `p50 ${r.p50Us.toFixed(2)} us, mean ${r.meanUs.toFixed(2)} us, p99 ${r.p99Us.toFixed(2)} us`}  (machine ${cpuDelta(before, cpuSnapshot([])).machineBusyPct.toFixed(0)}% busy)`);
        } else {
          const r = await harnessClient([`127.0.0.1:${benchPort}`, '-w', 'tcp-latency', '-t', String(duration), '-l', String(MESSAGE_SIZE)], duration);
          if (!r.error) {
            samples.harnessLatency.push(r.summary.latency.p50Us);
            samples.harnessMean.push(r.summary.latency.meanUs);
          }
          log(`round ${round + 1} tcp-latency    ${'harness'.padEnd(17)} ${r.error ?? `p50 ${r.summary.latency.p50Us.toFixed(2)} us, mean ${r.summary.latency.meanUs.toFixed(2)} us, p99 ${r.summary.latency.p99Us.toFixed(2)} us`}  (machine ${cpuDelta(before, cpuSnapshot([])).machineBusyPct.toFixed(0)}% busy)`);
        }
      }
    }
  } finally {
    await stopProcess(bench, 3000);
    await stopProcess(iperf, 3000);
    await stopProcess(sockperf, 3000);
  }
  const throughputRatio = median(samples.harnessThroughput) / median(samples.iperf3);
  const latencyDeviation = (median(samples.harnessLatency) - median(samples.sockperf)) / median(samples.sockperf);
  const noRdtscDeviation = (median(samples.harnessLatency) - median(samples.sockperfNoRdtsc)) / median(samples.sockperfNoRdtsc);
  const gbit = (v) => `${(v / 1e9).toFixed(2)} Gbit/s`;
  const us = (v) => `${v.toFixed(2)} us`;
  const range = (values, f) => (values.length ? `${f(min(values))} – ${f(max(values))}` : '–');
  const table = markdownTable(
    ['measurement', 'reference tool', 'fulcrum bench', 'result', 'target', 'met'],
    [
      ['tcp-throughput, 1 stream (median)', `iperf3 ${gbit(median(samples.iperf3))}`, gbit(median(samples.harnessThroughput)), `${(throughputRatio * 100).toFixed(1)}% of iperf3`, '≥ 90%', throughputRatio >= 0.9 ? 'yes' : 'NO'],
      ['  min – max', range(samples.iperf3, gbit), range(samples.harnessThroughput, gbit), '', '', ''],
      ['tcp round trip, 64 B, p50 (median)', `sockperf ${us(median(samples.sockperf))}`, us(median(samples.harnessLatency)), `${latencyDeviation >= 0 ? '+' : ''}${(latencyDeviation * 100).toFixed(1)}% vs sockperf`, 'within ±10%', Math.abs(latencyDeviation) <= 0.1 ? 'yes' : 'NO'],
      ['  min – max', range(samples.sockperf, us), range(samples.harnessLatency, us), '', '', ''],
      ['tcp round trip, mean (median)', `sockperf ${us(median(samples.sockperfMean))}`, us(median(samples.harnessMean)), '', '', ''],
      ['tcp round trip p50, sockperf --no-rdtsc', `sockperf ${us(median(samples.sockperfNoRdtsc))}`, us(median(samples.harnessLatency)), `${noRdtscDeviation >= 0 ? '+' : ''}${(noRdtscDeviation * 100).toFixed(1)}% (both timed with clock_gettime)`, '', ''],
    ],
    ['l', 'r', 'r', 'r', 'r', 'l'],
  );
  return { commands, table, throughputRatio, latencyDeviation };
}

// -------------------------------------------------------------------- suite

/** Fulcrum with a TCP service and, if this build's config accepts it, a UDP service, to the bench server. */
async function startFulcrumForSuite(dir, { tcpPort, udpPort, backend }) {
  const tcpYaml = fulcrumConfig({ listenPort: tcpPort, backends: [backend], workers: PROXY_THREADS, name: 'bench-tcp' });
  const udpService = [`  - name: bench-udp`, `    protocol: udp`, `    listen: 127.0.0.1:${udpPort}`, `    backends:`, `      - address: 127.0.0.1:${backend}`, ``].join('\n');
  const withUdp = `${tcpYaml.trimEnd()}\n${udpService}`;
  const probe = join(dir, 'fulcrum-udp-probe.yaml');
  writeFileSync(probe, withUdp);
  const check = await runCommand(process.execPath, [CLI, 'check', '-c', probe], { timeoutMs: 15000 });
  const udp = check.code === 0;
  const file = join(dir, 'fulcrum.yaml');
  writeFileSync(file, udp ? withUdp : tcpYaml);
  const handle = startProcess('fulcrum', process.execPath, [CLI, 'run', '-c', file], { cwd: REPO_ROOT });
  try {
    await waitForListen(tcpPort, { timeoutMs: 10000, handle });
  } catch (err) {
    await stopProcess(handle, 2000);
    throw new Error(`${err.message}; output:${outputTail(handle)}`);
  }
  const udpSkip = udp ? undefined : `this build's config rejects protocol: udp (${(check.stderr.trim().split('\n')[0] ?? '').replace(/^.*?: /, '')})`;
  return { handle, udp, udpSkip, file };
}

/** `fulcrum bench compare ... --json`, its progress lines shown as they come. */
async function runCompare(args, timeoutMs) {
  const handle = startProcess('fulcrum-bench-compare', process.execPath, [CLI, 'bench', 'compare', ...args, '--json'], { cwd: REPO_ROOT });
  let stdout = '';
  handle.child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  handle.child.stderr.on('data', (chunk) => process.stdout.write(chunk));
  const timer = setTimeout(() => stopProcess(handle, 1000), timeoutMs);
  await handle.exitPromise;
  clearTimeout(timer);
  try {
    return JSON.parse(stdout);
  } catch {
    throw new Error(`bench compare exit ${handle.exitCode}:${outputTail(handle)}`);
  }
}

async function suitePart({ rounds, duration }, dir) {
  // A UDP target takes TCP on the same port too: the client's control channel
  // (session, results) is TCP, to the port its datagrams go to, as with iperf3.
  const [benchPort, fulcrumPort, haproxyPort, nginxPort] = await freePorts(4);
  const started = [];
  const skipped = [];
  const commands = [`node dist/cli.js bench server -p ${benchPort} -B 127.0.0.1 --threads ${PROXY_THREADS}`];
  const versions = [];
  const tcpTargets = [];
  const udpTargets = [];
  try {
    started.push(await startBenchServer(benchPort));
    try {
      const f = await startFulcrumForSuite(dir, { tcpPort: fulcrumPort, udpPort: fulcrumPort, backend: benchPort });
      started.push(f.handle);
      tcpTargets.push(`fulcrum=127.0.0.1:${fulcrumPort}`);
      if (f.udp) udpTargets.push(`fulcrum=127.0.0.1:${fulcrumPort}`);
      else skipped.push(`fulcrum (UDP workloads): ${f.udpSkip}`);
      commands.push(`node dist/cli.js run -c fulcrum.yaml   # workers: ${PROXY_THREADS}; tcp${f.udp ? ' and udp' : ''} 127.0.0.1:${fulcrumPort} -> 127.0.0.1:${benchPort}`);
      versions.push(['fulcrum', fulcrumVersion()]);
    } catch (err) {
      skipped.push(`fulcrum: ${err.message.split('\n')[0]}`);
    }
    try {
      const h = await startHaproxy({ dir, listenPort: haproxyPort, backends: [benchPort], threads: PROXY_THREADS });
      started.push(h.handle);
      tcpTargets.push(`haproxy=127.0.0.1:${haproxyPort}`);
      commands.push(`haproxy -f haproxy.cfg -db   # mode tcp, option splice-auto, nbthread ${PROXY_THREADS}; 127.0.0.1:${haproxyPort} -> 127.0.0.1:${benchPort}`);
      versions.push(['haproxy', h.version]);
      skipped.push('haproxy (UDP workloads): HAProxy 2.6 does not proxy UDP');
    } catch (err) {
      skipped.push(`haproxy: ${err.message.split('\n')[0]}`);
    }
    try {
      const n = await startNginx({ dir, tcpPort: nginxPort, udpPort: nginxPort, backend: benchPort, workers: PROXY_THREADS });
      started.push(n.handle);
      tcpTargets.push(`nginx=127.0.0.1:${nginxPort}`);
      udpTargets.push(`nginx=127.0.0.1:${nginxPort}`);
      commands.push(`nginx -p DIR -c DIR/nginx.conf -e DIR/nginx-error.log   # stream, worker_processes ${PROXY_THREADS}, reuseport; tcp and udp 127.0.0.1:${nginxPort} -> 127.0.0.1:${benchPort}`);
      versions.push(['nginx', n.version]);
    } catch (err) {
      skipped.push(`nginx: ${err.message.split('\n')[0]}`);
    }
    const common = ['--rounds', String(rounds), '-t', String(duration)];
    const direct = ['--direct', `127.0.0.1:${benchPort}`];
    const svgTcp = join(dir, 'tcp.svg');
    const tcpArgs = [...direct, ...tcpTargets.flatMap((t) => ['--via', t]), '-w', TCP_WORKLOADS.join(','), ...common];
    const udpArgs = [...direct, ...udpTargets.flatMap((t) => ['--via', t]), '-w', UDP_WORKLOADS.join(','), '--flows', '4', ...common];
    commands.push(`node dist/cli.js bench compare ${quoteArgs(tcpArgs)} --json`);
    commands.push(`node dist/cli.js bench compare ${quoteArgs(udpArgs)} --json`);
    log(`\n$ node dist/cli.js bench compare ${quoteArgs(tcpArgs)}`);
    const timeout = (n) => n * rounds * (duration + 10) * 1000 + 60000;
    const tcp = await runCompare([...tcpArgs, '--svg', svgTcp], timeout(TCP_WORKLOADS.length * (tcpTargets.length + 1)));
    log(`\n$ node dist/cli.js bench compare ${quoteArgs(udpArgs)}`);
    const udp = await runCompare(udpArgs, timeout(UDP_WORKLOADS.length * (udpTargets.length + 1)));
    return { commands, skipped, versions, comparisons: [...tcp.comparisons, ...udp.comparisons] };
  } finally {
    for (const handle of started.reverse()) await stopProcess(handle, 3000);
  }
}

// --------------------------------------------------------------------- main

async function main() {
  const opts = options();
  installCleanup();
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-bench-harness-'));
  onInterrupt(() => rmSync(dir, { recursive: true, force: true }));
  const machine = machineInfo([
    { label: 'iperf3', cmd: 'iperf3', args: ['-v'] },
    { label: 'sockperf', cmd: 'sockperf', args: ['--version'] },
    { label: 'haproxy', cmd: 'haproxy', args: ['-v'] },
    { label: 'nginx', cmd: 'nginx', args: ['-v'] },
  ]);
  const loadAtStart = loadavg();
  log(`$ ${commandLine()}`);
  for (const [label, value] of machine) log(`${label.padEnd(9)}${value}`);
  log(`loadavg  ${loadAtStart} (at start)`);
  const { formatComparison } = await import(join(REPO_ROOT, 'dist', 'bench', 'compare.js'));
  const { renderComparisonSvg } = await import(join(REPO_ROOT, 'dist', 'bench', 'svg-chart.js'));
  let reference;
  let suite;
  try {
    if (opts.parts.includes('reference')) {
      log('\n== reference: fulcrum bench vs iperf3 and sockperf, straight to a server on loopback ==');
      reference = await referencePart(opts, dir);
      log(reference.skipped ? `skipped: ${reference.skipped}` : `\n${reference.table}`);
    }
    if (opts.parts.includes('suite')) {
      log('\n== suite: direct vs Fulcrum, HAProxy, nginx stream, every workload ==');
      suite = await suitePart(opts, dir);
      log(`\n${formatComparison(suite.comparisons)}`);
      for (const s of suite.skipped) log(`skipped: ${s}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const load = `${loadAtStart} at start, ${loadavg()} at end`;
  log(`\nloadavg  ${load}`);
  if (!opts.write) return;
  const head = [
    `Command: \`${commandLine()}\` (${opts.rounds} rounds × ${opts.duration} s per measurement).`,
    '',
    markdownTable(['machine', ''], [...machine, ['loadavg', load]], ['l', 'l']),
    '',
    `The machine is shared with other engineers' builds and tests while this runs (see loadavg):`,
    `absolute figures are noisy; the interleaved medians and ratios are what to compare.`,
  ];
  if (reference) {
    const body = reference.skipped
      ? [...head, '', `Skipped: ${reference.skipped}.`]
      : [...head, '', 'Commands (ports as used in this run):', '', '```sh', ...reference.commands, '```', '', reference.table];
    writeSection('harness-reference', `## fulcrum bench vs iperf3 and sockperf (bench/harness.mjs --part reference)\n\n${body.join('\n')}`);
  }
  if (suite) {
    writeFileSync(SVG_FILE, renderComparisonSvg(suite.comparisons, `fulcrum bench compare: direct vs proxies (${opts.rounds} rounds × ${opts.duration} s, medians)`));
    const body = [
      ...head,
      '',
      markdownTable(['proxy', 'version'], suite.versions, ['l', 'l']),
      '',
      'Commands (ports as used in this run):',
      '',
      '```sh',
      ...suite.commands,
      '```',
      '',
      `Ratios are to the direct path (higher is better for rates; for round trips, lower is better, so a ratio above 1 is slower). Chart: [harness-suite.svg](harness-suite.svg).`,
      '',
      formatComparison(suite.comparisons),
      '',
      ...suite.skipped.map((s) => `- skipped: ${s}`),
    ];
    writeSection('harness-suite', `## Direct vs Fulcrum, HAProxy, nginx with fulcrum bench (bench/harness.mjs --part suite)\n\n${body.join('\n')}`);
  }
  log(`wrote ${RESULTS_FILE}${suite ? ` and ${SVG_FILE}` : ''}`);
}

main().catch((err) => {
  process.stderr.write(`harness: ${err.stack ?? err}\n`);
  process.exit(1);
});
