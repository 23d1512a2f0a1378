// `fulcrum bench client` and `compare` as a user runs them: interval lines
// with a progress indicator, the final table, --json with the documented
// fields, compare's table, JSON and SVG, and usage errors.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { runCli, tempDir } from '../helpers/cli.js';
import { startBenchServer } from '../helpers/bench.js';

t.test('client: one line per interval with progress, then the final table', async (t) => {
  const server = startBenchServer(t);
  const r = await runCli(t, ['bench', 'client', `127.0.0.1:${server.port}`, '-t', '1', '-i', '0.25', '-P', '2']);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('['));
  t.equal(lines.length, 4, 'four intervals of 0.25 s');
  t.match(lines[0], /^\[ 25%\] ##\.{8} +0\.00-0\.2\d s +[\d.]+ [KMG]?B +[\d.]+ [KMG]?bit\/s  \(>[\d.]+ [KMG]?bit\/s >[\d.]+ [KMG]?bit\/s\)$/);
  t.match(lines[3], /^\[100%\] ##########/);
  t.match(r.stdout, /tcp-throughput summary\n  target +127\.0\.0\.1:\d+\n  duration +1\.\d\d s/);
  t.match(r.stdout, /counts agree +yes: client and server byte counts are equal/);
  t.match(r.stdout, /stream direction +client bytes +server bytes +rate +clean\n  0 +send /);
});

t.test('client --json: the documented fields', async (t) => {
  const server = startBenchServer(t);
  const r = await runCli(t, ['bench', 'client', `127.0.0.1:${server.port}`, '-w', 'tcp-latency', '-t', '0.6', '-i', '0.2', '--json']);
  t.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as Record<string, unknown> & { intervals: Array<Record<string, unknown>>; summary: Record<string, unknown> };
  t.same(Object.keys(report).sort(), ['intervals', 'options', 'primary', 'summary', 'target', 'version', 'workload']);
  t.equal(report.version, 1);
  t.equal(report.workload, 'tcp-latency');
  t.match(report.target, /^127\.0\.0\.1:\d+$/);
  t.same(Object.keys(report.options as object).sort(), ['concurrency', 'direction', 'durationS', 'flows', 'intervalS', 'messageSize', 'parallel', 'rate', 'threads']);
  t.equal(report.intervals.length, 3);
  for (const i of report.intervals) {
    for (const key of ['startS', 'endS', 'bytesSent', 'bytesReceived', 'bitsPerSecond', 'operations', 'operationsPerSecond', 'errors', 'latency']) {
      t.ok(key in i, `interval has ${key}`);
    }
    t.same(Object.keys(i.latency as object).sort(), ['count', 'dropped', 'maxUs', 'meanUs', 'minUs', 'p50Us', 'p999Us', 'p99Us']);
  }
  const s = report.summary;
  for (const key of ['durationS', 'bytesSent', 'bytesReceived', 'sendBitsPerSecond', 'receiveBitsPerSecond', 'operations', 'operationsPerSecond', 'latency', 'errors']) {
    t.ok(key in s, `summary has ${key}`);
  }
  t.same(report.primary, { name: 'p50 round trip', value: (s.latency as { p50Us: number }).p50Us, unit: 'us', better: 'lower' });
});

t.test('client --json for udp-pps has sent, delivered, lost, reordered', async (t) => {
  const server = startBenchServer(t);
  const r = await runCli(t, ['bench', 'client', `127.0.0.1:${server.port}`, '-w', 'udp-pps', '--rate', '5000', '--flows', '3', '-t', '0.5', '--json']);
  t.equal(r.code, 0, r.stderr);
  const udp = (JSON.parse(r.stdout) as { summary: { udp: Record<string, unknown> & { flows: unknown[] } } }).summary.udp;
  t.same(Object.keys(udp).sort(), ['delivered', 'deliveredPerSecond', 'flows', 'lossPercent', 'lost', 'reordered', 'sent', 'sentPerSecond']);
  t.equal(udp.flows.length, 3);
  const intervals = (JSON.parse(r.stdout) as { intervals: Array<Record<string, number>> }).intervals;
  for (const i of intervals) t.ok(i.delivered! > 0 && i.deliveredPerSecond! > 0, 'each interval has what the server counted');
  t.equal(intervals.reduce((a, i) => a + i.delivered!, 0) <= (udp.delivered as number), true);
});

t.test('--control sends the control channel elsewhere (a UDP-only path)', async (t) => {
  const server = startBenchServer(t, 1);
  // The data port is the server's; the control port is a TCP relay to it
  // (standing in for a proxy's TCP side on another port).
  const { createServer, connect } = await import('node:net');
  const relay = createServer((socket) => {
    const upstream = connect(server.port, '127.0.0.1');
    socket.pipe(upstream).pipe(socket);
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  t.teardown(() => relay.close());
  const relayPort = (relay.address() as { port: number }).port;
  const r = await runCli(t, ['bench', 'client', `127.0.0.1:${server.port}`, '--control', `127.0.0.1:${relayPort}`, '-w', 'udp-pps', '--rate', '2000', '-t', '0.5', '--json']);
  t.equal(r.code, 0, r.stderr);
  const udp = (JSON.parse(r.stdout) as { summary: { udp: { sent: number; delivered: number } } }).summary.udp;
  t.ok(udp.delivered > 0 && udp.delivered === udp.sent, 'the session opened through the relay counts the datagrams');
  const bad = await runCli(t, ['bench', 'compare', '--via', `x=127.0.0.1:${server.port},ctrl=127.0.0.1:1`]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--via x: expected ',control=HOST:PORT' after the address, got ',ctrl=127\.0\.0\.1:1'/);
});

t.test('usage errors exit 2 and name the problem', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['bench', 'client'], /expected one HOST:PORT, got none/],
    [['bench', 'client', 'nohost'], /expected HOST:PORT/],
    [['bench', 'client', '127.0.0.1:1', '-w', 'tcp-foo'], /--workload: expected one of tcp-throughput\|tcp-connrate/],
    [['bench', 'client', '127.0.0.1:1', '--direction', 'up'], /--direction: expected send, receive or both/],
    [['bench', 'client', '127.0.0.1:1', '-w', 'udp-pps', '-l', '10'], /--message-size: expected an integer from 24 to 8192/],
    [['bench', 'compare', '--via', 'x'], /--via: expected NAME=HOST:PORT/],
    [['bench', 'compare'], /give --direct HOST:PORT/],
    [['bench', 'frobnicate'], /unknown subcommand 'frobnicate'/],
  ];
  for (const [args, message] of cases) {
    const r = await runCli(t, args);
    t.equal(r.code, 2, args.join(' '));
    t.match(r.stderr, message);
    t.match(r.stderr, /Usage: fulcrum bench server/);
  }
});

t.test('client to a server that is not a bench server: a clear error, exit 1', async (t) => {
  const { createServer } = await import('node:net');
  const http = createServer((socket) => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  t.teardown(() => http.close());
  const port = (http.address() as { port: number }).port;
  const r = await runCli(t, ['bench', 'client', `127.0.0.1:${port}`, '-t', '1']);
  t.equal(r.code, 1);
  t.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${port} does not speak the fulcrum bench protocol: bad frame magic 0x4854`));
});

t.test('client to a closed port: exit 1 with ECONNREFUSED', async (t) => {
  const server = startBenchServer(t, 1);
  const port = server.port;
  server.close();
  const r = await runCli(t, ['bench', 'client', `127.0.0.1:${port}`, '-t', '1']);
  t.equal(r.code, 1);
  t.match(r.stderr, /ECONNREFUSED/);
});

t.test('compare: interleaved rounds, medians and ratios, JSON and SVG', async (t) => {
  const a = startBenchServer(t, 1);
  const b = startBenchServer(t, 1);
  const dir = tempDir(t);
  const svg = join(dir, 'chart.svg');
  const r = await runCli(t, [
    'bench', 'compare', '--direct', `127.0.0.1:${a.port}`, '--via', `other=127.0.0.1:${b.port}`,
    '-w', 'tcp-latency,udp-pps', '--rate', '2000', '--rounds', '2', '-t', '0.3', '--svg', svg, '--json',
  ], 60_000);
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as {
    comparisons: Array<{ workload: string; targets: Array<{ target: string; runs: number; median: number; ratio: number }> }>;
    measurements: Array<{ workload: string; target: string; round: number }>;
  };
  t.same(out.comparisons.map((c) => c.workload), ['tcp-latency', 'udp-pps']);
  t.equal(out.measurements.length, 8);
  // Round 0 visits direct first, round 1 other first.
  t.same(out.measurements.filter((m) => m.workload === 'tcp-latency').map((m) => `${m.round}:${m.target}`), ['0:direct', '0:other', '1:other', '1:direct']);
  for (const c of out.comparisons) {
    t.equal(c.targets[0]?.ratio, 1, 'the first target is the reference');
    t.equal(c.targets[1]?.runs, 2);
  }
  t.match(r.stderr, /\[  8\/8\] udp-pps round 2/);
  const chart = readFileSync(svg, 'utf8');
  t.match(chart, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  t.match(chart, /tcp-latency: median p50 round trip \(lower is better\)/);
  t.match(chart, />other</);
});
