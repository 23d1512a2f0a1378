// The bench server refuses malformed control messages with a clear ERROR
// frame and a clean close (FIN, not a crash or a reset), logs the peer and
// the reason, and keeps serving the clients that speak the protocol.
import t from 'tap';
import { FrameType, decodeError, encodeFrame, encodeHello, takeFrame, Role } from '../../src/bench/protocol.js';
import { runWorkload } from '../../src/bench/run-client.js';
import { rawExchange, runOptions, startBenchServer } from '../helpers/bench.js';
import { startCli } from '../helpers/cli.js';

function header(bytes: number[]): Buffer {
  return Buffer.from(bytes);
}

const CASES: Array<{ name: string; bytes: Buffer; message: RegExp }> = [
  { name: 'an HTTP request', bytes: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), message: /bad magic 0x4745: not a fulcrum bench client/ },
  { name: 'a future protocol version', bytes: header([0x46, 0x42, 9, 1, 0, 0, 0, 12, ...Array<number>(12).fill(0)]), message: /unsupported protocol version 9 \(this server speaks 1\)/ },
  { name: 'an unknown frame type', bytes: header([0x46, 0x42, 1, 77, 0, 0, 0, 0]), message: /unknown frame type 77/ },
  { name: 'a frame longer than the limit', bytes: header([0x46, 0x42, 1, 1, 0x7f, 0, 0, 0]), message: /frame payload of 2130706432 bytes exceeds the limit of 65536/ },
  { name: 'a first frame that is not HELLO', bytes: encodeFrame(FrameType.resultsRequest), message: /expected HELLO \(type 1\) as the first frame, got type 3/ },
  { name: 'a HELLO of the wrong size', bytes: encodeFrame(FrameType.hello, Buffer.alloc(5)), message: /HELLO payload must be 12 bytes, got 5/ },
  { name: 'an unknown role', bytes: encodeHello(42, 0, 0), message: /unknown role 42 in HELLO/ },
  { name: 'a data stream for an unknown session', bytes: encodeHello(Role.sink, 123, 0), message: /unknown session 123/ },
  { name: 'a stream index out of range', bytes: encodeHello(Role.sink, 0, 9999), message: /unknown session 0|stream 9999 out of range/ },
  {
    name: 'a second HELLO on a control connection',
    bytes: Buffer.concat([encodeHello(Role.control, 0, 0), encodeHello(Role.control, 0, 0)]),
    message: /unexpected frame type 1 on a control connection/,
  },
];

t.test('each malformed control message gets a clear ERROR frame and a clean close', async (t) => {
  const server = startBenchServer(t);
  for (const c of CASES) {
    const { reply, closed, error } = await rawExchange(server.port, c.bytes);
    t.ok(closed, `${c.name}: the server closed the connection`);
    t.equal(error, undefined, `${c.name}: closed cleanly (no reset)`);
    // A control connection's SESSION may come first; the ERROR is the last frame.
    let rest = reply;
    let last;
    for (let taken = takeFrame(rest); taken; taken = takeFrame(rest)) {
      last = taken.frame;
      rest = taken.rest;
    }
    t.equal(last?.type, FrameType.error, `${c.name}: an ERROR frame`);
    t.match(decodeError(last?.payload ?? Buffer.alloc(0)).message, c.message, `${c.name}: says why`);
  }
  t.equal(server.stats().protocolErrors, CASES.length, 'every refusal is counted');
  const log = server.takeLog();
  t.equal(log.length, CASES.length, 'and logged');
  t.match(log[0], /^127\.0\.0\.1:\d+: protocol error: bad magic 0x4745.*; connection closed$/);

  // A well-behaved client is still served, byte-exact.
  const report = await runWorkload('tcp-throughput', { host: '127.0.0.1', port: server.port }, runOptions({ durationS: 0.3, messageSize: 65536 }));
  t.equal(report.summary.countsAgree, true, 'a real run after the refusals counts exactly');
});

t.test('a peer that keeps sending garbage after the refusal still gets the ERROR before the close', async (t) => {
  const server = startBenchServer(t, 1);
  const garbage = Buffer.alloc(512 * 1024, 0x41);
  const { reply, closed, error } = await rawExchange(server.port, garbage);
  t.ok(closed);
  t.equal(error, undefined, 'no reset: the server drained the input instead of closing with unread data');
  const frame = takeFrame(reply)?.frame;
  t.equal(frame?.type, FrameType.error);
  t.match(decodeError(frame?.payload ?? Buffer.alloc(0)).message, /bad magic 0x4141/);
});

t.test('malformed UDP datagrams are counted and dropped', async (t) => {
  const server = startBenchServer(t, 1);
  const { createSocket } = await import('node:dgram');
  const socket = createSocket('udp4');
  t.teardown(() => socket.close());
  await new Promise<void>((resolve) => socket.connect(server.port, '127.0.0.1', resolve));
  for (const d of [Buffer.from('short'), Buffer.alloc(64, 0x58), Buffer.concat([Buffer.from('FU'), Buffer.from([1, 9]), Buffer.alloc(60)])]) socket.send(d);
  for (let i = 0; i < 100 && server.stats().malformedDatagrams < 3; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(server.stats().malformedDatagrams, 3);
  const report = await runWorkload('udp-latency', { host: '127.0.0.1', port: server.port }, runOptions({ durationS: 0.3 }));
  t.ok(report.summary.operations > 0, 'still echoes well-formed requests');
});

t.test('fulcrum bench server prints the refusal on stderr and keeps running', async (t) => {
  const proc = startCli(t, ['bench', 'server', '-p', '0', '-B', '127.0.0.1', '--threads', '1']);
  const port = Number(await proc.waitFor('the listening line', () => /listening on 127\.0\.0\.1:(\d+) \(tcp and udp, protocol v1/.exec(proc.stdout)?.[1]));
  const { closed } = await rawExchange(port, Buffer.from('hello there, server'));
  t.ok(closed);
  await proc.waitFor('the protocol error on stderr', () => (/protocol error: bad magic 0x6865/.test(proc.stderr) ? true : undefined));
  t.match(proc.stderr, /^fulcrum bench server: 127\.0\.0\.1:\d+: protocol error: bad magic 0x6865: not a fulcrum bench client \(expected "FB"\); connection closed$/m);
  t.equal(proc.exit, undefined, 'still running');
  proc.signal('SIGTERM');
  const exit = await proc.waitForExit();
  t.equal(exit.code, 0);
  t.match(proc.stdout, /stopped: 0 sessions, 1 connections, 1 protocol errors/);
});

t.test('a busy port is a clear error, exit 1', async (t) => {
  const server = startBenchServer(t, 1);
  const proc = startCli(t, ['bench', 'server', '-p', String(server.port), '-B', '127.0.0.1']);
  const exit = await proc.waitForExit();
  t.equal(exit.code, 1);
  t.match(proc.stderr, /bench server: listening on 127\.0\.0\.1:\d+: Address already in use/);
});

t.test('sessions are capped: the control connection past the limit is refused with a clear error', async (t) => {
  const server = startBenchServer(t, 1);
  const { connect } = await import('node:net');
  const LIMIT = 1024;
  const sockets = await Promise.all(
    Array.from({ length: LIMIT }, () =>
      new Promise<import('node:net').Socket>((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port: server.port });
        s.once('error', reject);
        s.once('connect', () => s.write(encodeHello(Role.control, 0, 0)));
        s.once('data', () => resolve(s));
      }),
    ),
  );
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  t.equal(server.stats().sessions, LIMIT);
  const { reply, closed } = await rawExchange(server.port, encodeHello(Role.control, 0, 0));
  t.ok(closed);
  t.match(decodeError(takeFrame(reply)?.frame.payload ?? Buffer.alloc(0)).message, /too many sessions open \(1024\); try again later/);
  // Closing one session makes room again.
  sockets.pop()?.destroy();
  await new Promise((r) => setTimeout(r, 200));
  const again = await rawExchange(server.port, encodeHello(Role.control, 0, 0), 20);
  t.equal(takeFrame(again.reply)?.frame.type, FrameType.session);
});
