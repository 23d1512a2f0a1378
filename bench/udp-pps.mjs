#!/usr/bin/env node
// UDP packet rate: F flows (one connected client socket each) send 64-byte
// datagrams to a UDP echo server and count the echoes — straight to the
// server (direct), through Fulcrum (protocol: udp, maglev on the 5-tuple)
// and through nginx's stream module (UDP, hash on the client address and
// port) when nginx and libnginx-mod-stream are installed. Two loads, both in
// every round: as fast as the client sends (delivered datagrams/s is what
// comes back) and a fixed 50,000 datagrams/s (loss must be 0). Targets are
// interleaved round by round with the order rotated.
//
//   node bench/udp-pps.mjs [--duration 5] [--rounds 5] [--flows 8] [--client-threads 1,2,3]
//        [--proxy-cpu 50] [--rate 50000] [--backends 2] [--latency 5] [--netns]
//        [--targets direct,kernel,fulcrum,nginx,nginx-rcvbuf] [--quick] [--write]
//
// kernel: Fulcrum with `datapath: kernel` (the tcx BPF NAT, README "Kernel
// UDP datapath"); fulcrum: `datapath: user` (the recvmmsg relay). The kernel
// path does not apply on loopback (it needs an address owned by a
// non-loopback interface), so it runs only with --netns: the client
// (udpflood, sockperf), the proxies and the backends (udp-echo, a sockperf
// server) in three network namespaces joined by veth pairs
// (bench/lib/netns.mjs); direct is then routed through the proxy namespace.
// Every measurement counts the CPU per echoed datagram: the proxy process's
// and the softirq time of all CPUs (/proc/stat), where the kernel path's NAT
// and redirect run (bench/lib/kernel-work.mjs). --latency S adds a round-trip
// load: sockperf ping-pong, UDP, 64 B, through a second service of each proxy
// to a sockperf server beside the echo servers (0: leave it out).
//
// Full speed is measured once per client thread count: with one sending
// thread a fast path is limited by the client (it delivers everything it is
// sent); with more, the client, the echo servers and the proxy share the two
// cores, and what comes back is what the proxy carries with its share. The
// targets are judged at the thread count where the client sends the most
// straight to the echo servers (its highest rate); every count is reported.
//
// On a machine this small the client and echo servers share the cores with
// the proxy, so an unconstrained full-speed run is a contest for CPU as much
// as a measure of the proxy. --proxy-cpu P (default 50) adds one more full-
// speed load with each proxy held to P% of one core by a cgroup CPU quota,
// and weighted to get it (bench/lib/cpu-budget.mjs): the proxy is then the
// bottleneck and the rest of the machine has room to spare, as when a proxy
// has cores of its own; delivered/s is then what the proxy carries on a
// fixed CPU budget.
// --proxy-cpu 0 leaves it out; without root or a cgroup cpu controller it is
// skipped with the reason.
//
// The load generator and echo server are small C programs (bench/tools/
// udpflood.c, udp-echo.c), built with `cc` into bench/.build/ on first use.

import { droppedIfExited, rotation } from './lib/rounds.mjs';
import { endRun } from './lib/interleaved.mjs';
import { intArg, targetsArg } from './lib/args.mjs';
import { cTool } from './lib/c-tools.mjs';
import { openCpuBudget } from './lib/cpu-budget.mjs';
import { parseArgs } from 'node:util';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installCleanup, onInterrupt, runCommand, startProcess, stopProcess, which, firstLine, sleep, withChildren } from './lib/proc.mjs';
import { cpuSnapshot, cpuDelta, otherWorkNote } from './lib/cpu.mjs';
import { summarize, ratio, fixed, median } from './lib/stats.mjs';
import { markdownTable } from './lib/table.mjs';
import { writeRunSection, RESULTS_FILE } from './lib/results.mjs';
import { machineInfo, commandLine } from './lib/machine.mjs';
import { REPO_ROOT, fulcrumVersion, outputTail } from './lib/proxies.mjs';
import { openNetns, placement } from './lib/netns.mjs';
import { kernelWorkPer, kernelWorkSnapshot } from './lib/kernel-work.mjs';

const SECTION = 'udp-pps';
// nginx-rcvbuf: nginx with the listener's receive buffer raised to Fulcrum's
// 8 MiB (`listen ... rcvbuf=8m`), as an operator tuning it for UDP would.
const ALL_TARGETS = ['direct', 'kernel', 'fulcrum', 'nginx', 'nginx-rcvbuf'];
const NGINX_TUNED_RCVBUF = '8m';
const PROXY_THREADS = 2;
const PAYLOAD = 64;
// Two SO_REUSEPORT sockets per echo server: a flow's echoes do not wait on one descheduled thread.
const ECHO_THREADS = 2;
// Sending thread counts of udpflood at full speed (each thread owns every Nth flow).
const CLIENT_THREADS = '1,2,3';
// The proxy-bound load: each proxy held to this % of one core (--proxy-cpu).
const PROXY_CPU_PERCENT = 50;
const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
/** Targets: Fulcrum delivers ≥ 2.5× nginx's datagrams/s at full speed (at the client's highest rate); no loss at the fixed rate. */
const TARGET_RATIO = 2.5;

const log = (line = '') => process.stdout.write(`${line}\n`);
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

function options() {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string' },
      rounds: { type: 'string' },
      flows: { type: 'string', default: '8' },
      'client-threads': { type: 'string', default: CLIENT_THREADS },
      'proxy-cpu': { type: 'string', default: String(PROXY_CPU_PERCENT) },
      rate: { type: 'string', default: '50000' },
      backends: { type: 'string', default: '2' },
      latency: { type: 'string' },
      netns: { type: 'boolean', default: false },
      targets: { type: 'string', default: ALL_TARGETS.join(',') },
      quick: { type: 'boolean', default: false },
      write: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const opt = {
    duration: intArg('duration', values.duration ?? (values.quick ? '2' : '5'), 1, 600),
    rounds: intArg('rounds', values.rounds ?? (values.quick ? '1' : '5'), 1, 100),
    flows: intArg('flows', values.flows, 1, 1024),
    clientThreads: [...new Set(values['client-threads'].split(',').map((t) => intArg('client-threads', t.trim(), 1, 64)))].sort((a, b) => a - b),
    rate: intArg('rate', values.rate, 1, 10_000_000),
    proxyCpu: intArg('proxy-cpu', values['proxy-cpu'], 0, 100 * PROXY_THREADS),
    backends: intArg('backends', values.backends, 1, 16),
    netns: values.netns,
    targets: targetsArg(values.targets, ALL_TARGETS),
    quick: values.quick,
    write: values.write,
  };
  opt.latency = intArg('latency', values.latency ?? String(opt.duration), 0, 600);
  if (opt.latency > 0 && !which('sockperf')) throw new Error('--latency needs sockperf (apt-get install sockperf), or --latency 0');
  const most = opt.clientThreads.at(-1);
  if (most > opt.flows) throw new Error(`--client-threads ${most}: at most --flows (${opt.flows}); each thread owns whole flows`);
  return opt;
}

/** UDP ports on 127.0.0.1 that were free a moment ago (all bound at once, so distinct). */
async function freeUdpPorts(count) {
  const sockets = [];
  try {
    for (let i = 0; i < count; i++) {
      const s = createSocket('udp4');
      await new Promise((resolve, reject) => {
        s.once('error', reject);
        s.bind(0, '127.0.0.1', resolve);
      });
      sockets.push(s);
    }
    return sockets.map((s) => s.address().port);
  } finally {
    for (const s of sockets) s.close();
  }
}

/**
 * Resolves once a datagram sent to 127.0.0.1:`port` comes back (the echo
 * server, through the proxy when there is one); rejects after `timeoutMs`
 * or when `handle`'s process exits.
 */
async function waitForEcho(port, { timeoutMs = 10000, handle, host = '127.0.0.1', net } = {}) {
  if (net) return waitForEchoIn(net, host, port, { timeoutMs, handle });
  const socket = createSocket('udp4');
  let answered = false;
  socket.on('message', () => (answered = true));
  await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve));
  try {
    for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
      if (handle?.exited) throw new Error(`${handle.name} exited (code ${handle.exitCode}, signal ${handle.signal})`);
      socket.send('ready?', port, host);
      await sleep(100);
      if (answered) return;
    }
    throw new Error(`no echo through ${host}:${port} within ${timeoutMs} ms`);
  } finally {
    socket.close();
  }
}

/** waitForEcho from the client namespace: short udpflood probes until one datagram comes back. */
async function waitForEchoIn(net, host, port, { timeoutMs, handle }) {
  const flood = cTool('udpflood');
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    if (handle?.exited) throw new Error(`${handle.name} exited (code ${handle.exitCode}, signal ${handle.signal})`);
    const r = await runCommand(flood, ['-a', host, '-p', String(port), '-f', '1', '-t', '1', '-d', '0.2', '-r', '50'], { timeoutMs: 5000, netns: net.client });
    try {
      if (JSON.parse(r.stdout.trim().split('\n').pop()).received > 0) return;
    } catch {
      // no result line: try again
    }
    await sleep(100);
  }
  throw new Error(`no echo through ${host}:${port} within ${timeoutMs} ms`);
}

async function startEcho(binary, port, net) {
  const host = placement(net).serverAddr;
  const handle = startProcess('udp-echo', binary, ['-p', String(port), '-t', String(ECHO_THREADS), '-a', host], { netns: net?.server });
  await waitForEcho(port, { handle, host, net });
  return handle;
}

/** sockperf's UDP server beside the echo servers, for the round-trip load (a plain echo does not answer sockperf's pings). */
async function startSockperfServer(port, net) {
  const host = placement(net).serverAddr;
  const handle = startProcess('sockperf-server', 'sockperf', ['server', '-i', host, '-p', String(port)], { netns: net?.server });
  await sleep(300);
  if (handle.exited) throw new Error(`sockperf server exited: ${outputTail(handle)}`);
  return handle;
}

/**
 * One UDP service to the echo servers and, with `rtt`, a second to the
 * sockperf server (`rtt`: { listenPort, backendPort }), on `datapath`.
 */
function fulcrumYaml(listenPort, backendPorts, { datapath, where, rtt }) {
  const service = (name, port, backends) => [
    `  - name: ${name}`,
    '    protocol: udp',
    `    listen: ${where.proxyAddr}:${port}`,
    '    balance: maglev',
    `    datapath: ${datapath}`,
    '    backends:',
    ...backends.map((p) => `      - address: ${where.serverAddr}:${p}`),
  ];
  return [
    '# Generated by bench/udp-pps.mjs for one benchmark run.',
    `workers: ${PROXY_THREADS}`,
    'drain_timeout: 2s',
    'log:',
    '  level: warn',
    'services:',
    ...service('bench-udp', listenPort, backendPorts),
    ...(rtt ? service('bench-rtt', rtt.listenPort, [rtt.backendPort]) : []),
    '',
  ].join('\n');
}

/** Fulcrum as target `name` (`datapath`: user or kernel), in the proxy namespace with `net`. */
async function startFulcrumUdp(dir, name, listenPort, backendPorts, { datapath, net, rtt }) {
  const cli = join(REPO_ROOT, 'dist', 'cli.js');
  if (!existsSync(cli)) throw new Error(`${cli} not found (build it with \`npx tsc -p .\`)`);
  const file = join(dir, `${name}-udp.yaml`);
  const where = placement(net);
  writeFileSync(file, fulcrumYaml(listenPort, backendPorts, { datapath, where, rtt }));
  const handle = startProcess(name, process.execPath, [cli, 'run', '-c', file], { cwd: REPO_ROOT, netns: net?.proxy });
  try {
    await waitForEcho(listenPort, { handle, host: where.proxyAddr, net });
  } catch (err) {
    await stopProcess(handle, 2000);
    throw new Error(`${err.message}; output:${outputTail(handle)}`);
  }
  return handle;
}

/**
 * nginx's stream proxy for UDP, as its documentation sets it up for DNS or
 * game traffic: `listen ... udp reuseport`, one session per client address
 * and port, held until proxy_timeout; `hash $remote_addr$remote_port
 * consistent` keeps a flow on one backend, as Fulcrum's maglev does.
 * worker_processes matches Fulcrum's workers.
 */
function nginxConfig(dir, name, listenPort, backendPorts, rcvbuf, where, rtt) {
  return [
    '# Generated by bench/udp-pps.mjs for one benchmark run.',
    `load_module ${NGINX_STREAM_MODULE};`,
    `worker_processes ${PROXY_THREADS};`,
    'daemon off;',
    'master_process on;',
    `pid ${join(dir, `${name}.pid`)};`,
    `error_log ${join(dir, `${name}-error.log`)} warn;`,
    'events { worker_connections 4096; }',
    'stream {',
    '  upstream echo {',
    '    hash $remote_addr$remote_port consistent;',
    ...backendPorts.map((port) => `    server ${where.serverAddr}:${port};`),
    '  }',
    '  server {',
    `    listen ${where.proxyAddr}:${listenPort} udp reuseport${rcvbuf ? ` rcvbuf=${rcvbuf}` : ''};`,
    '    proxy_pass echo;',
    '    proxy_timeout 10s;',
    '  }',
    ...(rtt
      ? [
          '  server {',
          `    listen ${where.proxyAddr}:${rtt.listenPort} udp reuseport${rcvbuf ? ` rcvbuf=${rcvbuf}` : ''};`,
          `    proxy_pass ${where.serverAddr}:${rtt.backendPort};`,
          '    proxy_timeout 10s;',
          '  }',
        ]
      : []),
    '}',
    '',
  ].join('\n');
}

function nginxVersion() {
  return which('nginx') ? firstLine('nginx', ['-v']) : null;
}

/** nginx as target `name` (its files in dir are named after it); rcvbuf: the listener's, or the kernel's default. */
async function startNginx(dir, name, listenPort, backendPorts, rcvbuf, { net, rtt } = {}) {
  const bin = which('nginx');
  if (!bin) throw new Error('nginx is not installed (apt-get install nginx libnginx-mod-stream)');
  if (!existsSync(NGINX_STREAM_MODULE)) throw new Error(`${NGINX_STREAM_MODULE} not found (apt-get install libnginx-mod-stream)`);
  const file = join(dir, `${name}.conf`);
  const errorLog = join(dir, `${name}-error.log`);
  const where = placement(net);
  writeFileSync(file, nginxConfig(dir, name, listenPort, backendPorts, rcvbuf, where, rtt));
  // -e: nginx opens its default error log before reading the config; keep it in dir.
  const handle = startProcess(name, bin, ['-p', dir, '-c', file, '-e', errorLog], { netns: net?.proxy });
  try {
    await waitForEcho(listenPort, { handle, host: where.proxyAddr, net });
  } catch (err) {
    await stopProcess(handle, 2000);
    let errors = '';
    try {
      errors = readFileSync(errorLog, 'utf8').trim().split('\n').slice(-5).join(' | ');
    } catch {
      // no log written
    }
    throw new Error(`${err.message}; output:${outputTail(handle)} ${errors}`);
  }
  return handle;
}

/**
 * Kernel drop counters of every UDP socket in the network namespaces of
 * `pids` (this one's when none): Map inode -> { local, remote, drops } (ports).
 */
function udpSocketDrops(pids = []) {
  const sockets = new Map();
  const roots = pids.length ? [...new Set(pids)].map((pid) => `/proc/${pid}/net`) : ['/proc/net'];
  for (const file of roots.flatMap((root) => [`${root}/udp`, `${root}/udp6`])) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 13) continue;
      const port = (field) => parseInt(field.split(':')[1], 16);
      sockets.set(f[9], { local: port(f[1]), remote: port(f[2]), drops: Number(f[f.length - 1]) });
    }
  }
  return sockets;
}

/**
 * Where the datagrams dropped between two udpSocketDrops() snapshots were
 * dropped: at the proxy's listener, at its upstream sockets (connected to an
 * echo server), at the echo servers. Sockets that closed in between are not seen.
 */
function dropsBetween(before, after, targetPort, echoPorts, proxied) {
  const where = { proxyListener: 0, proxyUpstream: 0, echo: 0 };
  for (const [inode, s] of after) {
    const d = s.drops - (before.get(inode)?.drops ?? 0);
    if (d <= 0) continue;
    if (proxied && s.local === targetPort) where.proxyListener += d;
    else if (echoPorts.includes(s.local) && s.remote === 0) where.echo += d;
    else if (proxied && echoPorts.includes(s.remote)) where.proxyUpstream += d;
  }
  return where;
}

/**
 * What each target is measured under, in this order every round: full speed
 * once per client thread count, then the fixed rate from one paced thread.
 */
function loadsOf(opt) {
  const threadsLabel = (n) => `${n} thread${n > 1 ? 's' : ''}`;
  // Two sending threads overload a proxy held to a fraction of a core.
  const budgetThreads = Math.min(2, opt.flows);
  return [
    ...opt.clientThreads.map((threads) => ({ key: `max${threads}`, full: true, label: `full speed, ${threadsLabel(threads)}`, rate: 0, threads })),
    // Proxies only: the direct path has no proxy to hold.
    ...(opt.proxyCpu > 0
      ? [{ key: 'budget', full: true, budget: true, label: `full speed, proxy ≤ ${opt.proxyCpu}% CPU, ${threadsLabel(budgetThreads)}`, rate: 0, threads: budgetThreads }]
      : []),
    { key: 'fixed', full: false, label: `${opt.rate}/s`, rate: opt.rate, threads: 1 },
    ...(opt.latency > 0 ? [{ key: 'rtt', rtt: true, label: `RTT, sockperf ${PAYLOAD} B` }] : []),
  ];
}
const LABEL_WIDTH = 36;

/**
 * The round-trip load: sockperf ping-pong over UDP, 64 B, full round trip,
 * for --latency s. Resolves `{ p50, p99, 'p99.9', received }` (µs;
 * received: round trips) or `{ error }`.
 */
async function measureRtt(host, port, opt, net) {
  const args = ['ping-pong', '-i', host, '-p', String(port), '-m', String(PAYLOAD), '-t', String(opt.latency), '--full-rtt'];
  const r = await runCommand('sockperf', args, { timeoutMs: (opt.latency + 30) * 1000, netns: net?.client });
  const text = (r.stdout + r.stderr).replace(/\x1b\[[0-9;]*m/g, '');
  const pick = (label) => Number(new RegExp(`percentile ${label.replace('.', '\\.')} =\\s*([\\d.]+)`).exec(text)?.[1]);
  const result = { p50: pick('50.000'), p99: pick('99.000'), 'p99.9': pick('99.900') };
  const sentMessages = /\[Total Run\][^\n]*SentMessages=(\d+)/.exec(text);
  if (r.code !== 0 || !Object.values(result).every(Number.isFinite)) {
    const why = r.timedOut ? 'timed out' : r.error ? r.error.message : `exit ${r.code ?? r.signal}`;
    return { error: `sockperf ${why}: ${text.trim().split('\n').slice(-2).join(' | ')}` };
  }
  return { ...result, received: Number(sentMessages?.[1] ?? 0) };
}

/** One measurement with udpflood on `threads` sending threads. Resolves its JSON result, or `{ error }`. */
async function measure(binary, host, port, opt, rate, threads, net) {
  const args = ['-a', host, '-p', String(port), '-f', String(opt.flows), '-t', String(threads), '-d', String(opt.duration), '-s', String(PAYLOAD), '-r', String(rate)];
  const r = await runCommand(binary, args, { timeoutMs: (opt.duration + 20) * 1000, netns: net?.client });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    const result = JSON.parse(line);
    if (r.code !== 0 || !Number.isFinite(result.delivered_rate)) throw new Error('bad result');
    return result;
  } catch {
    const why = r.timedOut ? 'timed out' : r.error ? r.error.message : `exit ${r.code ?? r.signal}`;
    return { error: `udpflood ${why}: ${(r.stdout + r.stderr).trim().split('\n').slice(-3).join(' | ')}` };
  }
}

async function main() {
  const opt = options();
  installCleanup();
  const flood = cTool('udpflood');
  const echo = cTool('udp-echo');
  const machine = machineInfo();
  machine.push(['nginx', nginxVersion() ?? 'not installed'], ['fulcrum', fulcrumVersion()]);
  const loadAtStart = loadavg();
  log(`command: ${commandLine()}`);
  for (const [k, v] of machine) log(`${k.padEnd(8)} ${v}`);
  const net = opt.netns ? openNetns('udp') : null;
  const where = placement(net);
  const whereText = net ? net.describe : 'loopback (127.0.0.1)';
  log(`plan: ${opt.rounds} round(s) x ${opt.targets.join(',')} x (${loadsOf(opt).map((l) => l.label).join('; ')}); ${opt.flows} flows, ${PAYLOAD}-byte datagrams, ` +
    `${opt.duration} s each; ${opt.backends} echo backends; proxies with ${PROXY_THREADS} workers; ${whereText}`);

  // The echo servers, the sockperf server, then two per target (datagram load, round-trip load).
  const ports = await freeUdpPorts(opt.backends + 1 + 2 * ALL_TARGETS.length);
  const backendPorts = ports.slice(0, opt.backends);
  const sockperfPort = ports[opt.backends];
  const targetPort = (name) => ports[opt.backends + 1 + 2 * ALL_TARGETS.indexOf(name)];
  const rttOf = (name) => (opt.latency > 0 ? { listenPort: ports[opt.backends + 2 + 2 * ALL_TARGETS.indexOf(name)], backendPort: sockperfPort } : undefined);
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-bench-udp-'));
  onInterrupt(() => rmSync(dir, { recursive: true, force: true }));
  const running = new Map();
  const skipped = new Map();
  const servers = [];
  let budget = null;
  try {
    if (opt.proxyCpu > 0) {
      budget = openCpuBudget(`fulcrum-bench-udp-${process.pid}`, opt.proxyCpu);
      if (budget.error) {
        skipped.set(`proxy ≤ ${opt.proxyCpu}% CPU load`, budget.error);
        log(`proxy ≤ ${opt.proxyCpu}% CPU: SKIPPED, ${budget.error}`);
        budget = null;
      } else {
        const open = budget;
        onInterrupt(() => open.close());
      }
    }
    for (const port of backendPorts) servers.push(await startEcho(echo, port, net));
    if (opt.latency > 0) servers.push(await startSockperfServer(sockperfPort, net));
    const proxied = (name, handle) => ({ host: where.proxyAddr, port: targetPort(name), rttPort: rttOf(name)?.listenPort, handle });
    const starters = {
      direct: async () => ({ host: where.serverAddr, port: backendPorts[0], rttPort: sockperfPort, handle: null }),
      kernel: async () => {
        if (!net) throw new Error('datapath: kernel does not apply on loopback (README, Kernel UDP datapath: an address owned by a non-loopback interface); run with --netns');
        return proxied('kernel', await startFulcrumUdp(dir, 'kernel', targetPort('kernel'), backendPorts, { datapath: 'kernel', net, rtt: rttOf('kernel') }));
      },
      fulcrum: async () => proxied('fulcrum', await startFulcrumUdp(dir, 'fulcrum', targetPort('fulcrum'), backendPorts, { datapath: 'user', net, rtt: rttOf('fulcrum') })),
      nginx: async () => proxied('nginx', await startNginx(dir, 'nginx', targetPort('nginx'), backendPorts, undefined, { net, rtt: rttOf('nginx') })),
      'nginx-rcvbuf': async () => proxied('nginx-rcvbuf', await startNginx(dir, 'nginx-rcvbuf', targetPort('nginx-rcvbuf'), backendPorts, NGINX_TUNED_RCVBUF, { net, rtt: rttOf('nginx-rcvbuf') })),
    };
    for (const name of opt.targets) {
      try {
        running.set(name, await starters[name]());
      } catch (err) {
        skipped.set(name, err.message.split('\n')[0]);
        log(`${name}: SKIPPED, ${err.message}`);
      }
    }
    const loads = loadsOf(opt);
    const samples = new Map(opt.targets.flatMap((t) => loads.map((l) => [`${t}/${l.key}`, []])));
    const order = opt.targets.filter((t) => running.has(t));
    for (let round = 0; round < opt.rounds; round++) {
      const rotated = rotation(order, round);
      log(`\nround ${round + 1}/${opt.rounds}: ${rotated.join(', ')}`);
      for (const name of rotated) {
        const t = running.get(name);
        if (!t) continue;
        if (droppedIfExited(name, t, running, skipped, log)) continue;
        for (const load of loads) {
          if (load.budget && (!budget || !t.handle)) continue;
          const proxyPids = withChildren(t.handle?.pid);
          // Drop counters of the namespaces involved (the proxy's, the echo servers').
          const dropPids = net ? [servers[0].pid, ...proxyPids] : [];
          if (load.budget) budget.confine(proxyPids);
          const dropsBefore = udpSocketDrops(dropPids);
          const before = cpuSnapshot([...proxyPids, ...servers.map((s) => s.pid)]);
          const kernelBefore = kernelWorkSnapshot();
          const r = load.rtt ? await measureRtt(t.host, t.rttPort, opt, net) : await measure(flood, t.host, t.port, opt, load.rate, load.threads, net);
          const kernelAfter = kernelWorkSnapshot();
          if (load.budget) budget.release(proxyPids);
          const cpu = cpuDelta(before, cpuSnapshot([...proxyPids, ...servers.map((s) => s.pid)]));
          const drops = dropsBetween(dropsBefore, udpSocketDrops(dropPids), t.port, backendPorts, t.handle !== null);
          if (r.error) {
            log(`  ${name.padEnd(12)} ${load.label.padEnd(LABEL_WIDTH)} FAILED: ${r.error}`);
            continue;
          }
          const proxyCpu = proxyPids.reduce((sum, pid) => sum + (cpu.procs.get(pid)?.pct ?? 0), 0);
          const echoCpu = servers.reduce((sum, s) => sum + (cpu.procs.get(s.pid)?.pct ?? 0), 0);
          // CPU per echoed datagram (a request and its reply): the proxy process's, and softirq time over all CPUs.
          const kernel = kernelWorkPer(kernelBefore, kernelAfter, r.received);
          const proxyUs = t.handle && r.received > 0 ? ((proxyCpu / 100) * cpu.seconds * 1e6) / r.received : 0;
          const sample = { ...r, drops, proxyCpu: t.handle ? proxyCpu : undefined, echoCpu, busy: cpu.machineBusyPct, others: cpu.othersPct, ...kernel, proxyUs, pathUs: proxyUs + kernel.softirqUs };
          samples.get(`${name}/${load.key}`).push(sample);
          if (load.rtt) {
            log(`  ${name.padEnd(12)} ${load.label.padEnd(LABEL_WIDTH)} p50 ${fixed(r.p50, 1)} µs  p99 ${fixed(r.p99, 1)} µs  p99.9 ${fixed(r['p99.9'], 1)} µs  ` +
              `proxy cpu ${t.handle ? `${fixed(proxyCpu, 0)}%` : '–'}  machine ${fixed(cpu.machineBusyPct, 0)}% busy`);
            continue;
          }
          log(`  ${name.padEnd(12)} ${load.label.padEnd(LABEL_WIDTH)} sent ${fixed(r.sent_rate, 0).padStart(7)}/s  delivered ${fixed(r.delivered_rate, 0).padStart(7)}/s  ` +
            `lost ${r.lost} (${fixed(r.loss_pct, 3)}%; dropped at ${dropText(r, drops)})  bad ${r.bad}  proxy cpu ${t.handle ? `${fixed(proxyCpu, 0)}%` : '–'}  ` +
            `client ${r.cpu_pct}%  echo ${fixed(echoCpu, 0)}%  machine ${fixed(cpu.machineBusyPct, 0)}% busy  ` +
            `per datagram: proxy ${fixed(proxyUs, 2)} + softirq ${fixed(kernel.softirqUs, 2)} µs, machine ${fixed(kernel.busyUs, 2)} µs`);
        }
      }
    }
    const load = `${loadAtStart} at start, ${loadavg()} at end`;
    const report = summary(opt, samples, skipped);
    log(`\n${report}`);
    log(`loadavg: ${load}`);
    if (opt.write) {
      const section = SECTION + (net ? '-netns' : '');
      const how = writeRunSection(section, [
        `## UDP packet rate${net ? ' across network namespaces' : ''} (bench/udp-pps.mjs)`,
        '',
        `Where: ${whereText}. kernel: Fulcrum \`datapath: kernel\` (tcx BPF NAT); fulcrum: \`datapath: user\` (the recvmmsg relay). ` +
          'CPU per datagram: per echoed datagram (request and reply), the proxy process\'s CPU plus the softirq time of all CPUs ' +
          '(/proc/stat; the kernel path\'s NAT and redirect run there, as does the forwarding of direct), and the whole machine\'s busy time. ' +
          (opt.latency > 0 ? `RTT: sockperf ping-pong over UDP, ${PAYLOAD} B, full round trip, ${opt.latency} s, through a second service of each proxy to a sockperf server. ` : '') +
          'For the kernel path the proxy process does next to nothing (its datagrams never reach it), so its proxy-bound load ' +
          'holds nothing back: the quota caps only the user-space work, and the kernel path\'s cost lands in the softirq of whichever CPU receives.',
        '',
        `${opt.flows} flows (bench/tools/udpflood.c, one connected socket per flow; at full speed on ${opt.clientThreads.join(', ')} sending ` +
          `thread(s) in turn, at the fixed rate on one), ${PAYLOAD}-byte datagrams echoed by ` +
          `${opt.backends} echo servers (bench/tools/udp-echo.c, recvmmsg/sendmmsg); ${opt.duration} s per measurement, ` +
          `${opt.rounds} interleaved round(s), each target at full speed and at ${opt.rate}/s. Delivered = echoes back at the client, ` +
          `byte-checked. Fulcrum \`workers: ${PROXY_THREADS}\`, \`protocol: udp\`, maglev; nginx \`worker_processes ${PROXY_THREADS}\`, ` +
          '`listen udp reuseport`, `hash $remote_addr$remote_port consistent`. nginx keeps the kernel\'s default socket ' +
          'buffers (it sets none unless told); nginx-rcvbuf is the same nginx with `listen ... rcvbuf=8m`, the receive buffer ' +
          'Fulcrum asks for on its listeners by itself (and 1 MiB on its upstream sockets). ' +
          (opt.proxyCpu > 0
            ? `The proxy-bound load holds each proxy (all its processes) to ${opt.proxyCpu}% of one core with a cgroup CPU ` +
              'quota and a high CPU weight (bench/lib/cpu-budget.mjs), so the proxy, not the client or the echo servers, is ' +
              'what limits the path: the delivered rate is what the proxy carries on that budget.'
            : '') +
          (opt.quick ? ' **Quick smoke run; not a measurement.**' : ''),
        '',
        `Targets: Fulcrum delivers ≥ ${TARGET_RATIO}× nginx's datagrams/s at full speed; no loss at ${opt.rate}/s. Full speed is ` +
          'judged twice: unconstrained at the thread count where the client sends the most straight to the echo servers, and ' +
          'proxy-bound.',
        '',
      ], [...machine, ['loadavg', load]], report);
      log(`\n${RESULTS_FILE}: section '${section}' ${how}`);
    }
  } finally {
    await endRun({ running, servers, budget, dir });
    net?.close();
  }
}

/** `proxy listener 12, echo 3`: the socket buffers that overflowed, or `none` when no drop was seen. */
function dropText(r, drops) {
  const parts = [
    ['proxy listener', drops.proxyListener],
    ['proxy upstream', drops.proxyUpstream],
    ['echo', drops.echo],
    ['client', r.client_drops ?? 0],
  ].filter(([, n]) => n > 0);
  return parts.length ? parts.map(([k, n]) => `${k} ${n}`).join(', ') : 'none seen';
}

function summary(opt, samples, skipped) {
  const loads = loadsOf(opt);
  const list = (name, key) => samples.get(`${name}/${key}`) ?? [];
  const med = (name, key, field) => median(list(name, key).map((s) => s[field]));
  // Delivered datagrams per second per core of proxy CPU: on a machine where
  // the client and the echo servers share the cores with the proxy (and other
  // work), the delivered rate is bounded by the whole machine; this is what
  // tells the proxies apart.
  const perCore = (name, key) => median(list(name, key).filter((s) => s.proxyCpu > 0).map((s) => s.delivered_rate / (s.proxyCpu / 100)));
  const rows = [];
  for (const name of opt.targets) {
    for (const load of loads.filter((l) => !l.rtt)) {
      const l = list(name, load.key);
      if (l.length === 0) {
        rows.push([name, load.label, 'skipped', '', '', '', '', '', '', '', '', '', '', '']);
        continue;
      }
      const r = summarize(l.map((s) => s.delivered_rate));
      const cpu = l.map((s) => s.proxyCpu).filter(Number.isFinite);
      rows.push([
        name,
        load.label,
        fixed(med(name, load.key, 'sent_rate'), 0),
        fixed(r.median, 0),
        `${fixed(r.min, 0)}–${fixed(r.max, 0)}`,
        load.full ? ratio(r.median, med('nginx', load.key, 'delivered_rate')) : '',
        `${l.reduce((n, s) => n + s.lost, 0)} of ${l.reduce((n, s) => n + s.sent, 0)} (${fixed(median(l.map((s) => s.loss_pct)), 3)}% median)`,
        dropText(
          { client_drops: l.reduce((n, s) => n + (s.client_drops ?? 0), 0) },
          Object.fromEntries(['proxyListener', 'proxyUpstream', 'echo'].map((k) => [k, l.reduce((n, s) => n + s.drops[k], 0)])),
        ),
        String(l.reduce((n, s) => n + s.bad, 0)),
        cpu.length ? `${fixed(median(cpu), 0)}%` : '–',
        // The kernel path's datagrams never reach its process: a rate per core of that process means nothing.
        load.full && cpu.length && name !== 'kernel' ? fixed(perCore(name, load.key), 0) : '',
        `${fixed(median(l.map((s) => s.proxyUs)), 2)} + ${fixed(median(l.map((s) => s.softirqUs)), 2)} = ${fixed(median(l.map((s) => s.pathUs)), 2)}`,
        fixed(median(l.map((s) => s.busyUs)), 2),
        `${fixed(median(l.map((s) => s.busy)), 0)}%`,
      ]);
    }
  }
  const parts = [markdownTable(['target', 'load', 'sent/s', 'median delivered/s', 'min–max', 'vs nginx', 'lost (all rounds)', 'dropped at (socket buffers)', 'bad', 'proxy CPU',
    'delivered/s per proxy core', 'µs/datagram: proxy + softirq', 'machine µs/datagram', 'machine busy'], rows)];
  const rtt = loads.find((l) => l.rtt);
  if (rtt) {
    parts.push('', `**${rtt.label}** (full round trip, µs, median over rounds)`, '');
    parts.push(markdownTable(['target', 'p50', 'p99', 'p99.9', 'p50 / direct', 'p99 / direct', 'p50 / fulcrum', 'p99 / fulcrum', 'runs'], opt.targets.map((name) => {
      const l = list(name, 'rtt');
      if (l.length === 0) return [name, 'skipped', '', '', '', '', '', '', ''];
      const m = (k) => med(name, 'rtt', k);
      return [name, fixed(m('p50'), 1), fixed(m('p99'), 1), fixed(m('p99.9'), 1), ratio(m('p50'), med('direct', 'rtt', 'p50')), ratio(m('p99'), med('direct', 'rtt', 'p99')),
        ratio(m('p50'), med('fulcrum', 'rtt', 'p50')), ratio(m('p99'), med('fulcrum', 'rtt', 'p99')), String(l.length)];
    })));
  }
  parts.push('');
  const full = loads.filter((l) => l.full);
  for (const load of full) {
    const f = med('fulcrum', load.key, 'delivered_rate');
    const n = med('nginx', load.key, 'delivered_rate');
    if (!Number.isFinite(f) || !Number.isFinite(n)) continue;
    const fc = perCore('fulcrum', load.key);
    const nc = perCore('nginx', load.key);
    const tuned = med('nginx-rcvbuf', load.key, 'delivered_rate');
    const direct = med('direct', load.key, 'sent_rate');
    parts.push(`- ${load.label}: fulcrum / nginx delivered datagrams/s ${ratio(f, n)}` +
      (Number.isFinite(fc) && Number.isFinite(nc) ? `; per proxy core ${ratio(fc, nc)}` : '') +
      (Number.isFinite(tuned) ? `; fulcrum / nginx-rcvbuf ${ratio(f, tuned)}` : '') +
      (Number.isFinite(direct) ? `; the client sent ${fixed(direct, 0)}/s straight to the echo servers` : '') +
      '.');
  }
  // Unconstrained, judged at the client's highest rate: the thread count that
  // sends the most with no proxy in the way (or the most threads, when direct
  // was not measured). Proxy-bound: the load with the proxies on a CPU budget.
  const sentDirect = (load) => med('direct', load.key, 'sent_rate') || 0;
  const unconstrained = full.filter((l) => !l.budget);
  const judged = [
    [unconstrained.reduce((best, load) => (sentDirect(load) > sentDirect(best) ? load : best), unconstrained.at(-1)), 'at the client\'s highest rate'],
    [full.find((l) => l.budget), 'proxy-bound'],
  ];
  parts.push('');
  for (const [load, how] of judged) {
    if (!load) continue;
    const f = med('fulcrum', load.key, 'delivered_rate');
    const n = med('nginx', load.key, 'delivered_rate');
    if (!Number.isFinite(f) || !Number.isFinite(n)) continue;
    parts.push(`fulcrum / nginx delivered datagrams/s ${how} (${load.label}): ${ratio(f, n)} — target ${TARGET_RATIO}× ${f >= TARGET_RATIO * n ? 'met' : 'NOT met'}.`);
  }
  // The kernel path (issue 26's targets), same run: against direct and the user-space relay (fulcrum).
  if (list('kernel', judged[0][0]?.key ?? '').length || list('kernel', 'fixed').length || list('kernel', 'rtt').length) {
    const verdict = (ok) => (ok ? 'met' : 'NOT met');
    for (const key of ['p50', 'p99']) {
      const k = med('kernel', 'rtt', key);
      const d = med('direct', 'rtt', key);
      const u = med('fulcrum', 'rtt', key);
      if (Number.isFinite(k) && Number.isFinite(d) && Number.isFinite(u)) {
        parts.push(`kernel RTT ${key}: ${ratio(k, d)}× direct (target ≤ 1.1: ${verdict(k <= 1.1 * d)}), ${ratio(k, u)}× fulcrum datapath: user (target ≤ 0.6: ${verdict(k <= 0.6 * u)}).`);
      }
    }
    for (const [load, how] of judged) {
      if (!load) continue;
      const k = med('kernel', load.key, 'delivered_rate');
      const d = med('direct', load.key, 'delivered_rate');
      if (Number.isFinite(k) && Number.isFinite(d)) parts.push(`kernel delivered datagrams/s ${how} (${load.label}): ${ratio(k, d)}× direct (target ≥ 0.9: ${verdict(k >= 0.9 * d)}).`);
      else if (Number.isFinite(k) && load.budget) {
        const u = med('fulcrum', load.key, 'delivered_rate');
        if (Number.isFinite(u)) parts.push(`kernel delivered datagrams/s ${how} (${load.label}): ${ratio(k, u)}× fulcrum datapath: user (direct has no proxy to hold).`);
      }
    }
    for (const load of [loads.find((l) => l.key === 'fixed'), judged[0][0]]) {
      if (!load) continue;
      const k = med('kernel', load.key, 'pathUs');
      const u = med('fulcrum', load.key, 'pathUs');
      const d = med('direct', load.key, 'pathUs');
      if (Number.isFinite(k) && Number.isFinite(u)) {
        parts.push(`kernel CPU per datagram (proxy + softirq) at ${load.label}: ${fixed(k, 2)} µs vs fulcrum ${fixed(u, 2)} µs = ${ratio(k, u)}× (target ≤ 0.5: ${verdict(k <= 0.5 * u)})` +
          (Number.isFinite(d) ? `; direct ${fixed(d, 2)} µs (its softirq only: forwarding, the echo servers' and the client's receive), ` +
            `so over direct the kernel path adds ${fixed(k - d, 2)} µs and the relay ${fixed(u - d, 2)} µs (${ratio(k - d, u - d)}×).` : '.'));
      }
    }
  }
  const fixedList = list('fulcrum', 'fixed');
  if (fixedList.length) {
    const lost = fixedList.reduce((s, x) => s + x.lost, 0);
    const clean = fixedList.filter((x) => x.lost === 0).length;
    parts.push(`fulcrum at ${opt.rate}/s: ${lost} lost of ${fixedList.reduce((s, x) => s + x.sent, 0)}; no loss in ${clean} of ${fixedList.length} run(s) — ` +
      `target no loss ${lost === 0 ? 'met' : 'NOT met'}.`);
    // The same load straight to the echo servers says whether the machine itself could carry it in those rounds.
    const direct = list('direct', 'fixed');
    if (direct.length) {
      parts.push(`direct at ${opt.rate}/s (no proxy at all): no loss in ${direct.filter((x) => x.lost === 0).length} of ${direct.length} run(s).`);
    }
  }
  parts.push('', 'CPU: median, % of one core (2 cores = 200%), the proxy with its worker processes; machine busy: % of all cores. ' +
    'At full speed the client sends more than the path carries; what comes back is the measure. Where nothing is lost, the client ' +
    'was the limit, not the path.');
  const others = otherWorkNote([...samples.values()].flat().map((s) => s.others));
  if (others) parts.push(others);
  for (const [name, reason] of skipped) parts.push(`- ${name} skipped: ${reason}`);
  return parts.join('\n');
}

main().catch((err) => {
  process.stderr.write(`udp-pps: ${err.stack ?? err}\n`);
  process.exitCode = 1;
});
