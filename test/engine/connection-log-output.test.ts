// Where connection records go and how many: syslog (RFC 5424) received by a
// real listener on a unix datagram socket and over UDP, the text format, a
// file reopened after logrotate moved it, sampling, the per-second cap, and a
// flood of short connections with the log on that loses no connection and
// accounts for every record (written or counted as dropped).
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t from 'tap';
import { runWorkload } from '../../src/bench/run-client.js';
import { startBackend } from '../helpers/backends.js';
import { runOptions, startBenchServer } from '../helpers/bench.js';
import { recordFile } from '../helpers/connection-log.js';
import { SERVICE, startService } from '../helpers/engine.js';
import { HOST, openConn, pingEcho, waitUntil } from '../helpers/traffic.js';

/** One short echoed connection through `port`. */
async function oneConnection(t: Parameters<Parameters<typeof t.test>[1]>[0], port: number): Promise<void> {
  const conn = await openConn(t, port);
  await pingEcho(conn);
  conn.socket.end();
  await conn.waitClosed();
}

const RFC5424 = /^<(\d+)>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) (\S+) (\d+) connection - (.*)$/s;

t.test('syslog over a unix datagram socket: RFC 5424 frames a JSON record', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-syslog-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'log.sock');
  // A real listener: Node has no unix datagram sockets, python3 does.
  const listener = spawn('python3', ['-u', '-c', [
    'import socket, sys',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    `s.bind(${JSON.stringify(path)})`,
    'print("ready", flush=True)',
    'while True:',
    '    data = s.recv(65536)',
    '    sys.stdout.write(data.decode() + "\\n\\x1e\\n")',
    '    sys.stdout.flush()',
  ].join('\n')], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => void listener.kill('SIGKILL'));
  const messages: string[] = [];
  let buffer = '';
  const ready = new Promise<void>((resolve) => {
    listener.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      if (buffer.startsWith('ready\n')) {
        buffer = buffer.slice(6);
        resolve();
      }
      let at;
      while ((at = buffer.indexOf('\n\x1e\n')) >= 0) {
        messages.push(buffer.slice(0, at));
        buffer = buffer.slice(at + 3);
      }
    });
  });
  await ready;

  const backend = await startBackend(t, 'echo');
  const { port } = await startService(t, {
    backends: [backend.port],
    connectionLog: ['output: syslog', `syslog: {address: ${JSON.stringify(path)}, facility: local3, tag: lb1}`],
  });
  await oneConnection(t, port);
  await waitUntil('a syslog message', () => messages.length >= 1);
  const match = RFC5424.exec(messages[0]!);
  t.ok(match, `an RFC 5424 message: ${messages[0]}`);
  t.equal(Number(match?.[1]), 19 * 8 + 6, 'PRI: local3, informational');
  t.equal(match?.[4], 'lb1', 'APP-NAME: the tag');
  t.equal(Number(match?.[5]), process.pid, 'PROCID: the process');
  const record = JSON.parse(match?.[6] ?? '{}') as { service?: string; termination?: string; bytes_in?: number };
  t.equal(record.service, SERVICE);
  t.equal(record.termination, 'client_closed');
  t.equal(record.bytes_in, 5);
});

t.test('syslog over UDP, in the text format', async (t) => {
  const server = createSocket('udp4');
  t.teardown(() => server.close());
  const messages: string[] = [];
  server.on('message', (data) => messages.push(data.toString()));
  await new Promise<void>((resolve) => server.bind(0, HOST, resolve));
  const backend = await startBackend(t, 'echo');
  const { port } = await startService(t, {
    backends: [backend.port],
    connectionLog: ['output: syslog', 'format: text', `syslog: {address: "${HOST}:${server.address().port}"}`],
  });
  await oneConnection(t, port);
  await waitUntil('a syslog datagram', () => messages.length >= 1);
  const match = RFC5424.exec(messages[0]!);
  t.ok(match, `an RFC 5424 message: ${messages[0]}`);
  t.equal(Number(match?.[1]), 16 * 8 + 6, 'PRI: local0 (the default), informational');
  t.match(
    match?.[6] ?? '',
    new RegExp(`^\\S+Z tcp ${SERVICE} 127\\.0\\.0\\.1:\\d+ -> ${HOST}:${port} -> ${HOST}:${backend.port} client_closed queue=0\\.000ms connect=\\d+\\.\\d{3}ms duration=\\d+\\.\\d{3}ms attempts=1 in=5 out=5$`),
    'the text line: client -> listen -> backend, how it ended, times, attempts, bytes',
  );
});

t.test('a file reopened after logrotate moved it; sample and the per-second cap are counted', async (t) => {
  const log = recordFile(t);
  const backend = await startBackend(t, 'echo');
  const { port, engine } = await startService(t, { backends: [backend.port], connectionLog: log.keys });
  await oneConnection(t, port);
  await waitUntil('the first record', () => log.records().length === 1);
  const rotated = `${log.file}.1`;
  renameSync(log.file, rotated);
  await oneConnection(t, port);
  await waitUntil('the second record, in the moved file', () => readFileSync(rotated, 'utf8').split('\n').filter(Boolean).length === 2);
  engine.reopenConnectionLog();
  await oneConnection(t, port);
  await waitUntil('the third record, in a new file', () => log.records().length === 1);
  t.equal(readFileSync(rotated, 'utf8').split('\n').filter(Boolean).length, 2, 'nothing more in the moved file');
  t.equal(engine.connectionLogCounters().written, 3);

  const sampled = recordFile(t, ['sample: 0']);
  const { port: port2, engine: engine2 } = await startService(t, { backends: [backend.port], connectionLog: sampled.keys });
  for (let i = 0; i < 5; i++) await oneConnection(t, port2);
  await waitUntil('5 sampled out', () => engine2.connectionLogCounters().sampledOut === 5);
  t.same(sampled.records(), [], 'sample: 0 writes none');
  t.equal(engine2.connectionStats().get(SERVICE)?.terminations.client_closed, 5, 'the metrics still count every connection');

  const capped = recordFile(t, ['max_per_second: 2']);
  const { port: port3, engine: engine3 } = await startService(t, { backends: [backend.port], connectionLog: capped.keys });
  for (let i = 0; i < 6; i++) await oneConnection(t, port3);
  await waitUntil('6 accounted for', () => {
    const c = engine3.connectionLogCounters();
    return c.written + c.overCap === 6;
  });
  const counters = engine3.connectionLogCounters();
  t.ok(counters.written >= 2 && counters.written < 6, `some written (${counters.written}), the rest over the cap (${counters.overCap})`);
  t.equal(capped.records().length, counters.written);
});

t.test('a flood of short connections with the log on: none lost, every record accounted for', async (t) => {
  // 100,000 as the issue asks; 20,000 in a sanitized build (several times slower).
  const sanitized = process.env.FULCRUM_SANITIZER !== undefined;
  const TARGET = sanitized ? 20_000 : 100_000;
  const log = recordFile(t);
  const server = startBenchServer(t);
  const { port, engine, service } = await startService(t, { backends: [server.port], connectionLog: log.keys });
  let made = 0;
  let errors = 0;
  const deadline = Date.now() + (sanitized ? 60_000 : 120_000);
  while (made < TARGET && Date.now() < deadline) {
    const report = await runWorkload('tcp-connrate', { host: HOST, port }, runOptions({ durationS: 2, concurrency: 32 }));
    made += report.summary.operations;
    errors += Object.values(report.summary.errors).reduce((a, b) => a + b, 0);
  }
  t.comment(`${made} connections`);
  t.ok(made >= TARGET, `${made} connections (at least ${TARGET})`);
  t.equal(errors, 0, 'no connection failed');
  await waitUntil('every connection closed', () => service().active === 0, 10_000);
  const accepted = service().accepted;
  t.ok(accepted >= made, `Fulcrum accepted every one (${accepted})`);
  await waitUntil('every record accounted for', () => {
    const c = engine.connectionLogCounters();
    return c.written + c.dropped === accepted;
  }, 20_000);
  const c = engine.connectionLogCounters();
  t.comment(`records: ${c.written} written, ${c.dropped} dropped (ring full)`);
  t.equal(c.writeErrors, 0);
  let lines = 0;
  const reader = createInterface({ input: (await import('node:fs')).createReadStream(log.file) });
  for await (const line of reader) if (line.length > 0) lines++;
  t.equal(lines, c.written, 'the file holds exactly the records counted written');
  const ended = Object.values(engine.connectionStats().get(SERVICE)?.terminations ?? {}).reduce((a, b) => a + b, 0);
  t.equal(ended, accepted, 'the metrics count every one, by how it ended');
});
