// Refused clients are named in the log: every refusal (ACL, client limits, a
// missing, malformed or late PROXY header) is counted, and the control plane
// hears of it as a client_refused event with the client's address and port
// and the reason — the PROXY header's client once a header named it — at
// most 10 events a second per worker, each saying how many refusals went
// unreported before it, so a flood cannot flood the log and no refusal is
// lost from the accounting.
import { connect } from 'node:net';
import t from 'tap';
import type { EngineEvent } from '../../src/engine/engine.js';
import { startBackends } from '../helpers/backends.js';
import { startFulcrum } from '../helpers/cli.js';
import { SERVICE, startService } from '../helpers/engine.js';
import { HOST, openConn, pingEcho, waitUntil } from '../helpers/traffic.js';
import { startUdpBackend, startUdpService, udpClient, UDP_SERVICE } from '../helpers/udp.js';

const refusals = (events: readonly EngineEvent[]): EngineEvent[] => events.filter((e) => e.type === 'client_refused');

/** Connect from `from`, wait until Fulcrum ends the connection; resolves the local port used. */
async function refusedFrom(port: number, from: string, send?: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: HOST, port, localAddress: from });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${from}: not closed within 5 s`));
    }, 5_000);
    let localPort = 0;
    socket.once('connect', () => {
      localPort = socket.localPort!;
      if (send) socket.write(send);
    });
    socket.on('data', () => undefined);
    socket.once('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(localPort);
    });
  });
}

t.test('a denied TCP client is named: address, port, service and reason', async (t) => {
  const backends = await startBackends(t, 1, 'echo');
  const { port, events, service } = await startService(t, { backends: [backends[0]!.port], keys: ['deny: [127.0.0.3, 127.0.0.5]'] });
  const ports = [await refusedFrom(port, '127.0.0.3'), await refusedFrom(port, '127.0.0.5')];
  const admitted = await openConn(t, port, 5_000, '127.0.0.4');
  await pingEcho(admitted, 'let in\n');
  await waitUntil('two client_refused events', () => refusals(events).length === 2);
  const seen = refusals(events).map((e) => [e.service, e.client, e.reason, e.suppressed]).sort();
  t.same(seen, [
    [SERVICE, `127.0.0.3:${ports[0]}`, 'denied', 0],
    [SERVICE, `127.0.0.5:${ports[1]}`, 'denied', 0],
  ], 'each refusal names its client and the deny list');
  t.equal(service().admission.denied, 2, 'and is counted');
});

t.test('over a client limit: the reason is the limit', async (t) => {
  const backends = await startBackends(t, 1, 'echo');
  const { port, events } = await startService(t, { backends: [backends[0]!.port], keys: ['client_limits: {max_connections: 1}'] });
  const held = await openConn(t, port, 5_000, '127.0.0.7');
  await pingEcho(held, 'first\n');
  const local = await refusedFrom(port, '127.0.0.7');
  await waitUntil('a client_refused event', () => refusals(events).length === 1);
  t.match(refusals(events)[0], { client: `127.0.0.7:${local}`, reason: 'overConnections', suppressed: 0 });
});

t.test('behind a PROXY header, the refused client is the one the header names; a bad header names the peer', async (t) => {
  const backends = await startBackends(t, 1, 'echo');
  const { port, events, service } = await startService(t, {
    backends: [backends[0]!.port],
    keys: ['accept_proxy: true', 'deny: [192.0.2.66]'],
  });
  await refusedFrom(port, '127.0.0.2', Buffer.from('PROXY TCP4 192.0.2.66 192.0.2.1 40000 5432\r\nhello'));
  const peerPort = await refusedFrom(port, '127.0.0.8', Buffer.from('PROXY TCP4 192.0.2.66 nonsense\r\n'));
  await waitUntil('two client_refused events', () => refusals(events).length === 2);
  const [denied, malformed] = [...refusals(events)].sort((a, b) => String(a.reason).localeCompare(String(b.reason)));
  t.match(denied, { client: '192.0.2.66:40000', reason: 'denied' }, 'the header\'s client, judged by the ACL');
  t.match(malformed, { client: `127.0.0.8:${peerPort}`, reason: 'proxyMalformed' }, 'a malformed header: the peer that sent it');
  t.same([service().admission.denied, service().admission.proxyMalformed], [1, 1]);
});

t.test('a flood is reported at most 10 times a second per worker, and the reports account for every refusal', async (t) => {
  const backends = await startBackends(t, 1, 'echo');
  // One worker: the per-worker budget and its "unreported" count are one sequence.
  const { port, events, service } = await startService(t, { backends: [backends[0]!.port], keys: ['deny: [127.0.0.9]'] }, 1);
  const FLOOD = 60;
  const started = Date.now();
  await Promise.all(Array.from({ length: FLOOD }, () => refusedFrom(port, '127.0.0.9')));
  const elapsedS = (Date.now() - started) / 1000;
  await waitUntil('the flood to be counted', () => service().admission.denied === FLOOD);
  const duringFlood = refusals(events).length;
  t.ok(duringFlood <= 10 * (Math.ceil(elapsedS) + 1), `${duringFlood} events for ${FLOOD} refusals in ${elapsedS.toFixed(2)} s`);
  t.ok(duringFlood < FLOOD, 'fewer events than refusals');
  // The next refusal in a new second is reported and says how many went unreported.
  await new Promise((resolve) => setTimeout(resolve, 1_100));
  await refusedFrom(port, '127.0.0.9');
  await waitUntil('one more event', () => refusals(events).length === duringFlood + 1);
  const accounted = refusals(events).reduce((n, e) => n + 1 + (e.suppressed ?? 0), 0);
  t.equal(accounted, FLOOD + 1, 'events plus the refusals they say went unreported = every refusal');
});

t.test('a denied UDP client is named; a run of datagrams is one event', async (t) => {
  const backend = await startUdpBackend(t, 'echo');
  const { port, events, service } = await startUdpService(t, { backends: [backend.port], keys: ['deny: [127.0.0.10]'] });
  const client = await udpClient(t, '127.0.0.10');
  for (let i = 0; i < 5; i++) await client.send(`datagram ${i}`, port);
  await waitUntil('5 denied datagrams', () => service().admission.denied === 5);
  const accounted = (): number => refusals(events).reduce((n, e) => n + 1 + (e.suppressed ?? 0), 0);
  await waitUntil('events for the 5 datagrams', () => accounted() === 5);
  const seen = refusals(events);
  t.ok(seen.length >= 1 && seen.length <= 5, `${seen.length} event(s)`);
  t.ok(seen.every((e) => e.service === UDP_SERVICE && e.client === `127.0.0.10:${client.port}` && e.reason === 'denied'), 'each names the UDP client');
  t.equal(accounted(), 5, 'and together they account for the 5 datagrams');
});

t.test('fulcrum run: a refused TCP client is a connection record; with the connection log off, a client_refused line', async (t) => {
  const backends = await startBackends(t, 1, 'echo');
  const config = (logKeys: readonly string[]) => (listen: number) => [
    'workers: 1',
    'log:',
    '  level: info',
    ...logKeys,
    'services:',
    '  - name: db',
    `    listen: 127.0.0.1:${listen}`,
    '    deny: [127.0.0.11]',
    '    backends:',
    `      - address: 127.0.0.1:${backends[0]!.port}`,
    '',
  ].join('\n');

  const logged = await startFulcrum(t, config([]));
  const local = await refusedFrom(logged.port, '127.0.0.11');
  const record = await logged.proc.waitFor('the refused client\'s record', () => logged.proc.logs.find((l) => l.termination === 'denied'));
  t.match(record, { type: 'tcp', event: 'end', service: 'db', client: `127.0.0.11:${local}`, backend: null, termination: 'denied' });
  t.notOk(logged.proc.hasLog('client_refused'), 'no client_refused line beside the record');

  const off = await startFulcrum(t, config(['connection_log:', '  output: off']));
  const offLocal = await refusedFrom(off.port, '127.0.0.11');
  const line = await off.proc.waitForLog('client_refused');
  t.match(line, { event: 'client_refused', service: 'db', client: `127.0.0.11:${offLocal}`, reason: 'denied', suppressed: 0 });
});
