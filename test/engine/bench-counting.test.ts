// The harness counts truthfully: on bounded runs against a real bench server
// (native threads, real sockets on 127.0.0.1), what the client counts equals
// what the server counts, byte for byte, and a paced UDP stream measures
// within 5% of its rate.
import t from 'tap';
import { runWorkload } from '../../src/bench/run-client.js';
import { runOptions, startBenchServer } from '../helpers/bench.js';

t.test('tcp-throughput: bytes counted equal bytes sent, both directions, per stream', async (t) => {
  const server = startBenchServer(t);
  const report = await runWorkload('tcp-throughput', { host: '127.0.0.1', port: server.port }, runOptions({ parallel: 2, direction: 'both', messageSize: 128 * 1024 }));
  const streams = report.summary.streams ?? [];
  t.equal(streams.length, 4, 'two send and two receive streams');
  t.same(streams.map((s) => s.direction), ['send', 'send', 'receive', 'receive']);
  for (const s of streams) {
    t.ok(s.clientBytes > 0, `stream ${s.stream} moved bytes`);
    t.equal(s.serverBytes, s.clientBytes, `stream ${s.stream} (${s.direction}): server and client agree exactly`);
    t.ok(s.closedCleanly, `stream ${s.stream} ended with both EOFs`);
  }
  t.equal(report.summary.countsAgree, true);
  t.same(report.summary.errors, {});
  const sent = streams.filter((s) => s.direction === 'send').reduce((a, s) => a + s.clientBytes, 0);
  t.equal(report.summary.bytesSent, sent, 'summary bytesSent is the sum of the send streams');
  const intervalBytes = report.intervals.reduce((a, i) => a + i.bytesSent, 0);
  t.ok(intervalBytes <= sent, 'intervals never count more than the total');
});

t.test('tcp-throughput receive-only: the server reports what it wrote, the client read all of it', async (t) => {
  const server = startBenchServer(t, 1);
  const report = await runWorkload('tcp-throughput', { host: '127.0.0.1', port: server.port }, runOptions({ direction: 'receive', messageSize: 65536 }));
  const [stream] = report.summary.streams ?? [];
  t.ok(stream && stream.clientBytes > 0);
  t.equal(stream?.serverBytes, stream?.clientBytes);
  t.equal(report.summary.bytesSent, 0);
});

t.test('udp-pps at a known rate measures within 5%, sent and delivered', async (t) => {
  const server = startBenchServer(t);
  const rate = 20_000;
  const report = await runWorkload('udp-pps', { host: '127.0.0.1', port: server.port }, runOptions({ durationS: 1.5, intervalS: 0.5, rate, flows: 2 }));
  const udp = report.summary.udp!;
  t.ok(Math.abs(udp.sentPerSecond - rate) / rate < 0.05, `sent ${udp.sentPerSecond.toFixed(0)}/s is within 5% of ${rate}/s`);
  t.ok(Math.abs(udp.deliveredPerSecond - rate) / rate < 0.05, `delivered ${udp.deliveredPerSecond.toFixed(0)}/s is within 5% of ${rate}/s`);
  t.equal(udp.delivered + udp.lost, udp.sent, 'delivered + lost = sent');
  t.equal(udp.flows.length, 2);
  for (const f of udp.flows) t.ok(Math.abs(f.sent - udp.sent / 2) <= udp.sent * 0.05, `flow ${f.flow} carries half the rate`);
  // Intervals add up to the total (a stalled interval is caught up in the
  // next one, so single intervals are not checked against the rate); the
  // last datagrams may go out between the last snapshot and the stop.
  const inIntervals = report.intervals.reduce((a, i) => a + i.operations, 0);
  t.ok(inIntervals <= udp.sent && inIntervals >= udp.sent * 0.95, `intervals count ${inIntervals} of ${udp.sent}`);
});

t.test('tcp-latency: every round trip is recorded, bytes echoed equal bytes sent', async (t) => {
  const server = startBenchServer(t);
  const report = await runWorkload('tcp-latency', { host: '127.0.0.1', port: server.port }, runOptions({ messageSize: 100 }));
  const s = report.summary;
  t.ok(s.operations > 100, `${s.operations} round trips`);
  t.equal(s.latency?.count, s.operations, 'one latency sample per round trip');
  t.equal(s.bytesReceived, s.bytesSent, 'echoed bytes equal sent bytes');
  // A request written just before the stop is echoed (and read) but not timed.
  t.ok(s.bytesSent === s.operations * 100 || s.bytesSent === (s.operations + 1) * 100, 'bytes sent are whole messages, at most one untimed');
  const l = s.latency!;
  t.ok(l.minUs <= l.p50Us && l.p50Us <= l.p99Us && l.p99Us <= l.p999Us && l.p999Us <= l.maxUs, 'percentiles are ordered');
  t.equal(report.primary.better, 'lower');
});

t.test('tcp-connrate: connections complete, each with a latency sample, no errors', async (t) => {
  const server = startBenchServer(t);
  const report = await runWorkload('tcp-connrate', { host: '127.0.0.1', port: server.port }, runOptions({ concurrency: 8 }));
  const s = report.summary;
  t.ok(s.operations > 50, `${s.operations} connections`);
  t.ok((s.latency?.count ?? 0) >= s.operations, 'a latency sample for every completed connection');
  t.same(s.errors, {});
  t.equal(s.bytesReceived, s.operations * 64 + ((s.latency?.count ?? 0) - s.operations) * 64, 'echo bytes: 64 per echoed connection');
});

t.test('udp-latency: round trips recorded, none lost on loopback', async (t) => {
  const server = startBenchServer(t);
  const report = await runWorkload('udp-latency', { host: '127.0.0.1', port: server.port }, runOptions({ flows: 2 }));
  t.ok(report.summary.operations > 100);
  t.equal(report.summary.lost, 0);
  t.equal(report.summary.latency?.count, report.summary.operations);
});

t.test('a client to a port where nothing listens fails with ECONNREFUSED', async (t) => {
  const server = startBenchServer(t);
  const port = server.port;
  server.close();
  await t.rejects(runWorkload('tcp-latency', { host: '127.0.0.1', port }, runOptions()), { code: 'ECONNREFUSED' });
});

t.test('IPv6: a server on ::1 and a client to [::1]:port count exactly', async (t) => {
  const { loadNative } = await import('../../src/engine/native.js');
  const server = new (loadNative().bench.Server)({ host: '::1', port: 0, threads: 1 });
  t.teardown(() => server.close());
  const report = await runWorkload('tcp-throughput', { host: '::1', port: server.port }, runOptions({ durationS: 0.3, messageSize: 65536 }));
  t.equal(report.target, `[::1]:${server.port}`);
  t.equal(report.summary.countsAgree, true);
  const udp = await runWorkload('udp-pps', { host: '::1', port: server.port }, runOptions({ durationS: 0.3, rate: 1000 }));
  t.equal(udp.summary.udp?.delivered, udp.summary.udp?.sent);
});
