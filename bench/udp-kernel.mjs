#!/usr/bin/env node
// The kernel UDP datapath (datapath: kernel, README "Kernel UDP datapath")
// against the direct path, Fulcrum's user-space relay (datapath: user) and
// nginx's stream module, across network namespaces over veth: a client
// namespace, the balancer namespace and a backend namespace running
// `sockperf server`. The direct path is routed through the balancer
// namespace (IP forwarding, no NAT), so every path crosses the same two veth
// pairs. Needs root. The kernel path does not apply on loopback (README), so
// this bench has no loopback case; bench/udp-pps.mjs covers the relay there.
//
//   node bench/udp-kernel.mjs [--latency 10] [--throughput 5] [--rounds 3] [--targets direct,kernel,user,nginx] [--write]
//   node bench/udp-kernel.mjs --targets kernel,policy --write
//
// policy: the kernel path with every admission policy on (allow/deny lists of
// 200 prefixes, client_limits datagram_rate 1000000/s, udp.responses 1000000:
// none ever refuses, so each datagram pays the checks), against kernel
// (policies off): what the policies cost. Written to its own section.
//
// Per round, targets rotated: sockperf ping-pong, 64 B, full RTT (p50, p99,
// p99.9), then sockperf throughput 64 B for --throughput seconds at full
// speed: delivered datagrams/s = the backend namespace's UdpInDatagrams +
// UdpRcvbufErrors (what reached its stack); then the same at a fixed rate,
// where CPU per delivered datagram = busy time over every CPU from /proc/stat
// (user + system + irq + softirq: the redirect runs in softirq) divided by
// the delivered count. Medians over rounds.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { median, fixed } from './lib/stats.mjs';
import { markdownTable } from './lib/table.mjs';
import { writeRunSection } from './lib/results.mjs';
import { machineInfo } from './lib/machine.mjs';
import { REPO_ROOT, nginxStreamModule } from './lib/proxies.mjs';

const { values: args } = parseArgs({
  options: {
    latency: { type: 'string', default: '10' },
    throughput: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    targets: { type: 'string', default: 'direct,kernel,user,nginx' },
    write: { type: 'boolean', default: false },
  },
});
const LATENCY_S = Number(args.latency);
const THROUGHPUT_S = Number(args.throughput);
const ROUNDS = Number(args.rounds);
// The fixed rate at which CPU per datagram is measured (every path carries it).
const FIXED_MPS = 20000;
const PREFIX = `fulbk-${process.pid}-`;
const ns = (host) => `${PREFIX}${host}`;
const FRONT = '10.203.1.1';
const CLIENT = '10.203.1.2';
const BACK = '10.203.2.1';
const SERVER = '10.203.2.2';
const SERVER_PORT = 11111;
const TARGETS = { direct: [SERVER, SERVER_PORT], kernel: [FRONT, 7000], user: [FRONT, 7001], nginx: [FRONT, 7002], policy: [FRONT, 7003] };
// The policy target's lists: the client's /24 among 200 prefixes of other
// networks (an LPM trie that has to be walked), and a deny list.
const ALLOW = [...Array.from({ length: 150 }, (_, i) => `10.${100 + (i % 100)}.${i}.0/24`), '10.203.1.0/24'];
const DENY = Array.from({ length: 49 }, (_, i) => `10.203.1.${200 + i}/32`);

if (process.getuid?.() !== 0) {
  console.error('udp-kernel: needs root (network namespaces, BPF)');
  process.exit(2);
}
const sh = (cmd, list) => execFileSync(cmd, list, { encoding: 'utf8' });
const inNs = (host, cmd, list) => sh('ip', ['netns', 'exec', ns(host), cmd, ...list]);

const children = [];
function start(host, cmd, list) {
  const child = spawn('ip', ['netns', 'exec', ns(host), cmd, ...list], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c) => (output += c));
  child.stderr.on('data', (c) => (output += c));
  children.push(child);
  return { child, output: () => output };
}
let cleaned = false;
function cleanup() {
  if (cleaned) return;
  cleaned = true;
  // ip netns exec runs the command in place of itself: the child is the process.
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  for (const host of ['c', 'p', 'b']) {
    try {
      sh('ip', ['netns', 'del', ns(host)]);
    } catch {}
  }
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

// The topology: client -- balancer -- backend, two veth pairs.
for (const host of ['c', 'p', 'b']) {
  sh('ip', ['netns', 'add', ns(host)]);
  sh('ip', ['-n', ns(host), 'link', 'set', 'lo', 'up']);
}
sh('ip', ['-n', ns('c'), 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'front', 'netns', ns('p')]);
sh('ip', ['-n', ns('b'), 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'back', 'netns', ns('p')]);
for (const [host, dev, cidr] of [['c', 'eth0', `${CLIENT}/24`], ['p', 'front', `${FRONT}/24`], ['p', 'back', `${BACK}/24`], ['b', 'eth0', `${SERVER}/24`]]) {
  sh('ip', ['-n', ns(host), 'addr', 'add', cidr, 'dev', dev]);
  sh('ip', ['-n', ns(host), 'link', 'set', dev, 'up']);
}
sh('ip', ['-n', ns('c'), 'route', 'add', 'default', 'via', FRONT]);
sh('ip', ['-n', ns('b'), 'route', 'add', 'default', 'via', BACK]);
inNs('p', 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);

const dir = mkdtempSync(join(tmpdir(), 'fulcrum-udp-kernel-bench-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
start('b', 'sockperf', ['server', '-i', SERVER, '-p', String(SERVER_PORT)]);
writeFileSync(join(dir, 'fulcrum.yaml'), `workers: 2
log: {level: warn}
services:
  - {name: kernel, protocol: udp, listen: "${FRONT}:7000", datapath: kernel, backends: [{address: "${SERVER}:${SERVER_PORT}"}]}
  - {name: user, protocol: udp, listen: "${FRONT}:7001", datapath: user, backends: [{address: "${SERVER}:${SERVER_PORT}"}]}
  - name: policy
    protocol: udp
    listen: "${FRONT}:7003"
    datapath: kernel
    allow: [${ALLOW.join(', ')}]
    deny: [${DENY.join(', ')}]
    client_limits: {datagram_rate: 1000000, datagram_burst: 1000000}
    udp: {responses: 1000000}
    backends: [{address: "${SERVER}:${SERVER_PORT}"}]
`);
const fulcrum = start('p', process.execPath, [join(REPO_ROOT, 'dist', 'cli.js'), 'run', '-c', join(dir, 'fulcrum.yaml')]);
const targets = args.targets.split(',');
const nginxModule = nginxStreamModule();
if (targets.includes('nginx')) {
  if (!nginxModule) {
    console.error('nginx: no stream module (libnginx-mod-stream): left out');
    targets.splice(targets.indexOf('nginx'), 1);
  } else {
    writeFileSync(join(dir, 'nginx.conf'), [
      `load_module ${nginxModule};`, 'daemon off;', 'worker_processes 2;', `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${join(dir, 'nginx-error.log')} warn;`, 'events { worker_connections 4096; }',
      `stream { server { listen ${FRONT}:7002 udp reuseport; proxy_pass ${SERVER}:${SERVER_PORT}; proxy_timeout 10s; } }`, '',
    ].join('\n'));
    start('p', 'nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'nginx-error.log')]);
  }
}
await new Promise((r) => setTimeout(r, 1500));
if (fulcrum.child.exitCode !== null) {
  console.error(`fulcrum did not start: ${fulcrum.output()}`);
  process.exit(1);
}

const snmpUdp = (host) => {
  const lines = inNs(host, 'cat', ['/proc/net/snmp']).split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0].split(/\s+/);
  const values = lines[1].split(/\s+/).map(Number);
  return (name) => values[names.indexOf(name)];
};
const cpuBusy = () => {
  // jiffies: user nice system idle iowait irq softirq steal
  const [, ...f] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
  const n = f.map(Number);
  return n[0] + n[1] + n[2] + n[5] + n[6] + n[7];
};
const ticks = Number(sh('getconf', ['CLK_TCK']).trim());

function latency(target) {
  const [ip, port] = TARGETS[target];
  const out = inNs('c', 'sockperf', ['ping-pong', '-i', ip, '-p', String(port), '-m', '64', '-t', String(LATENCY_S), '--full-rtt']);
  const pick = (p) => Number(out.match(new RegExp(`percentile ${p.replace('.', '\\.')}\\s*=\\s*([0-9.]+)`))?.[1]);
  return { p50: pick('50.000'), p99: pick('99.000'), p999: pick('99.900') };
}

// mps: a fixed send rate (CPU per datagram then excludes a sender spinning
// at full speed); 0: as fast as the client sends.
function throughput(target, mps = 0) {
  const [ip, port] = TARGETS[target];
  const before = snmpUdp('b');
  const busy0 = cpuBusy();
  inNs('c', 'sockperf', ['throughput', '-i', ip, '-p', String(port), '-m', '64', '-t', String(THROUGHPUT_S), ...(mps ? ['--mps', String(mps)] : [])]);
  const after = snmpUdp('b');
  const busy1 = cpuBusy();
  const delivered = after('InDatagrams') - before('InDatagrams') + after('RcvbufErrors') - before('RcvbufErrors');
  return { pps: delivered / THROUGHPUT_S, cpuUs: delivered > 0 ? ((busy1 - busy0) / ticks) * 1e6 / delivered : NaN };
}

const results = Object.fromEntries(targets.map((t) => [t, []]));
for (let round = 0; round < ROUNDS; round++) {
  const order = targets.map((_, i) => targets[(i + round) % targets.length]);
  for (const target of order) {
    const full = throughput(target);
    const fixedRate = throughput(target, FIXED_MPS);
    const row = { ...latency(target), pps: full.pps, cpuUs: fixedRate.cpuUs };
    results[target].push(row);
    console.error(`round ${round + 1} ${target}: p50 ${row.p50} p99 ${row.p99} p99.9 ${row.p999} us, ${Math.round(row.pps)} delivered/s, ${fixed(row.cpuUs)} us CPU/datagram at ${FIXED_MPS}/s`);
  }
}
const med = (target, key) => median(results[target].map((r) => r[key]));
const rows = targets.map((t) => [
  t, fixed(med(t, 'p50'), 1), fixed(med(t, 'p99'), 1), fixed(med(t, 'p999'), 1), `${fixed(med(t, 'pps') / 1000, 1)}k`, fixed(med(t, 'cpuUs'), 2),
  targets.includes('direct') ? fixed(med(t, 'p50') / med('direct', 'p50')) : '-',
  targets.includes('user') ? fixed(med(t, 'p50') / med('user', 'p50')) : '-',
]);
const table = markdownTable(['path', 'RTT p50 µs', 'p99', 'p99.9', 'delivered/s', `CPU µs/datagram at ${FIXED_MPS / 1000}k/s`, 'p50 / direct', 'p50 / user'], rows);
console.log(table);
const kernelLines = [];
if (targets.includes('kernel') && targets.includes('direct') && targets.includes('user')) {
  kernelLines.push(
    `kernel vs direct: p50 x${fixed(med('kernel', 'p50') / med('direct', 'p50'))}, p99 x${fixed(med('kernel', 'p99') / med('direct', 'p99'))}, delivered x${fixed(med('kernel', 'pps') / med('direct', 'pps'))}; ` +
    `kernel vs user: p50 x${fixed(med('kernel', 'p50') / med('user', 'p50'))}, p99 x${fixed(med('kernel', 'p99') / med('user', 'p99'))}, CPU/datagram x${fixed(med('kernel', 'cpuUs') / med('user', 'cpuUs'))}`,
  );
  console.log(kernelLines[0]);
}
const policyOnly = targets.length === 2 && targets.includes('kernel') && targets.includes('policy');
if (policyOnly) {
  kernelLines.push(
    `policy vs kernel (the admission policies' cost): p50 x${fixed(med('policy', 'p50') / med('kernel', 'p50'))}, p99 x${fixed(med('policy', 'p99') / med('kernel', 'p99'))}, ` +
    `delivered x${fixed(med('policy', 'pps') / med('kernel', 'pps'))}, CPU/datagram x${fixed(med('policy', 'cpuUs') / med('kernel', 'cpuUs'))}`,
  );
  console.log(kernelLines.at(-1));
}
if (args.write && policyOnly) {
  writeRunSection('udp-kernel-policy', [
    '## Kernel UDP datapath: the cost of the admission policies (bench/udp-kernel.mjs --targets kernel,policy)',
    '',
    `The topology of "Kernel UDP datapath across namespaces" (same script). kernel: \`datapath: kernel\` with no policy; policy: the same with allow/deny (200 IPv4 prefixes, the client's among them), client_limits datagram_rate/burst 1000000 and udp.responses 1000000, so every datagram pays the ACL lookup (new flows), the per-client bucket and the reply count, and none is refused. sockperf 64 B ping-pong for ${LATENCY_S} s and throughput for ${THROUGHPUT_S} s; medians of ${ROUNDS} interleaved rounds, order rotated.`,
  ], machineInfo([{ label: 'sockperf', cmd: 'sockperf', args: ['--version'] }]), [table, '', ...kernelLines].join('\n'));
} else if (args.write) {
  writeRunSection('udp-kernel', [
    '## Kernel UDP datapath across namespaces (bench/udp-kernel.mjs)',
    '',
    `Client, balancer and backend in three network namespaces joined by two veth pairs; \`sockperf server\` on the backend. direct: routed through the balancer namespace (no NAT); kernel: Fulcrum \`datapath: kernel\` (tcx BPF NAT); user: Fulcrum \`datapath: user\` (the recvmmsg relay, workers: 2); nginx: stream module, UDP, worker_processes 2. sockperf ping-pong 64 B full RTT for ${LATENCY_S} s, then sockperf throughput 64 B for ${THROUGHPUT_S} s at full speed (delivered = the backend namespace's UdpInDatagrams + UdpRcvbufErrors) and at a fixed ${FIXED_MPS}/s (CPU = busy jiffies of every CPU, softirq included, per delivered datagram; the whole machine's, so other work on it counts too). Medians of ${ROUNDS} interleaved rounds, order rotated. Unconstrained only: a cgroup CPU quota on the proxy does not bound the kernel path (its work runs in the sender's softirq), so the proxy-bound comparison of bench/udp-pps.mjs does not carry over.`,
  ], machineInfo([{ label: 'sockperf', cmd: 'sockperf', args: ['--version'] }, { label: 'nginx', cmd: 'nginx', args: ['-v'] }]), [table, '', ...kernelLines].join('\n'));
}
cleanup();
process.exit(0);
