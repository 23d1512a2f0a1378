// protocol: udp end to end: real UDP backends (child processes), real client
// sockets on loopback, byte-exact checks. Flows (5-tuple), replies from the
// address the client sent to, every datagram size, idle expiry, max_flows
// eviction, backends going down or refusing (ICMP), request/response mode.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { parseConfig } from '../../src/config/load.js';
import { Engine } from '../../src/engine/engine.js';
import { freePort, startBackend } from '../helpers/backends.js';
import { startEngine } from '../helpers/engine.js';
import { delay, HOST, openConn, pingEcho, runBounded, waitUntil } from '../helpers/traffic.js';
import { freeUdpPort, startUdpBackend, startUdpService, udpClient, udpServiceYaml, type UdpClient } from '../helpers/udp.js';

/** The backend port an `id` backend wrote in front of its reply ("<port>|..."). */
function answeredBy(data: Buffer): number {
  return Number(data.subarray(0, data.indexOf(0x7c)).toString());
}

t.test('1,000 concurrent clients, each on its own flow, get exactly their own replies', async (t) => {
  const backends = await Promise.all([startUdpBackend(t, 'echo'), startUdpBackend(t, 'echo')]);
  const { port, service } = await startUdpService(t, { backends: backends.map((b) => b.port) });
  const CLIENTS = 1000;
  const ROUNDS = 3;
  const clients: UdpClient[] = [];
  for (let i = 0; i < CLIENTS; i++) clients.push(await udpClient(t));
  const sent: Buffer[][] = clients.map(() => []);
  // Every client has its flow open while the others send: rounds over all
  // clients, a bounded number of datagrams in flight (loopback never loses
  // while the socket buffers have room).
  for (let round = 0; round < ROUNDS; round++) {
    await runBounded(CLIENTS, 100, async (i) => {
      const client = clients[i]!;
      const payload = Buffer.concat([Buffer.from(`client ${i} round ${round} `), randomBytes(16 + ((i * 7 + round) % 200))]);
      sent[i]!.push(payload);
      await client.send(payload, port);
      await client.waitFor(round + 1);
    });
  }
  let exact = 0;
  for (let i = 0; i < CLIENTS; i++) {
    const got = clients[i]!.received;
    const ok = got.length === ROUNDS && got.every((d, r) => d.data.equals(sent[i]![r]!) && d.address === HOST && d.port === port);
    if (ok) exact++;
    else t.fail(`client ${i}: got ${got.length} replies, not its own ${ROUNDS} byte for byte from ${HOST}:${port}`);
  }
  t.equal(exact, CLIENTS, 'every client received exactly its own replies, byte for byte, from the service address');
  const stats = service();
  t.equal(stats.udp?.flowsCreated, CLIENTS, 'one flow per client');
  t.equal(stats.udp?.flowsActive, CLIENTS, 'all flows open at once');
  t.equal(stats.udp?.datagramsIn, CLIENTS * ROUNDS, 'datagrams in');
  t.equal(stats.udp?.datagramsOut, CLIENTS * ROUNDS, 'datagrams out');
  t.equal(stats.udp?.datagramsDropped, 0, 'nothing dropped');
  const perBackend = stats.backends.map((b) => b.accepted);
  t.equal(perBackend[0]! + perBackend[1]!, CLIENTS, 'flows created per backend add up');
  t.ok(perBackend.every((n) => n > CLIENTS / 4), `maglev spreads flows over both backends (${perBackend.join(', ')})`);
  t.equal(stats.backends.reduce((n, b) => n + (b.udp?.datagramsIn ?? 0), 0), CLIENTS * ROUNDS, 'backend datagram counters add up');
});

t.test('every datagram size from 1 to 65,507 bytes passes intact both ways', async (t) => {
  const backend = await startUdpBackend(t, 'echo');
  const { port, service } = await startUdpService(t, { backends: [backend.port] });
  const client = await udpClient(t);
  const sizes = new Set<number>([1, 2, 3, 64, 512, 1471, 1472, 1473, 8192, 9000, 32768, 65506, 65507]);
  for (let size = 1; size <= 65_507; size += 1009) sizes.add(size);
  const ordered = [...sizes].sort((a, b) => a - b);
  let bytes = 0;
  for (const size of ordered) {
    const payload = randomBytes(size);
    const before = client.received.length;
    await client.send(payload, port);
    const [reply] = (await client.waitFor(before + 1)).slice(before);
    if (!reply!.data.equals(payload)) t.fail(`size ${size}: reply differs (${reply!.data.length} bytes)`);
    bytes += size;
  }
  t.equal(client.received.length, ordered.length, `${ordered.length} sizes, one reply each`);
  t.ok(client.received.every((d, i) => d.data.length === ordered[i]), 'each reply has its datagram\'s size');
  t.equal(client.received.at(-1)!.data.length, 65_507, 'the largest IPv4 UDP payload, 65,507 bytes, passed');
  // An empty datagram is a datagram too.
  const before = client.received.length;
  await client.send(Buffer.alloc(0), port);
  t.equal((await client.waitFor(before + 1))[before]!.data.length, 0, 'an empty datagram passes both ways');
  const stats = service();
  t.equal(stats.udp?.datagramsIn, ordered.length + 1, 'datagrams counted, the empty one too');
  t.equal(stats.bytesIn, bytes, 'bytes in counted');
  t.equal(stats.bytesOut, bytes, 'bytes out counted');
  t.equal(stats.udp?.datagramsDropped, 0, 'nothing dropped');
});

t.test('on a wildcard listener, replies leave from the address the client sent to', async (t) => {
  const backend = await startUdpBackend(t, 'echo');
  const { port, service } = await startUdpService(t, { backends: [backend.port], host: '*' });
  for (const target of ['127.0.0.1', '127.0.0.2', '127.0.0.3']) {
    const client = await udpClient(t);
    const reply = await client.request(`to ${target}`, port, target, 5, 1000);
    t.equal(reply.address, target, `reply to a datagram sent to ${target} comes from ${target}`);
    t.equal(reply.port, port, 'and from the service port');
    t.equal(reply.data.toString(), `to ${target}`, 'byte for byte');
  }
  t.equal(service().udp?.flowsCreated, 3, 'three flows: the local address is part of the 5-tuple');
});

t.test('idle flows expire after timeouts.idle; counters say so', async (t) => {
  const backend = await startUdpBackend(t, 'echo');
  const { port, service } = await startUdpService(t, { backends: [backend.port], keys: ['timeouts: {idle: 300ms}'] });
  const clients = await Promise.all(Array.from({ length: 5 }, () => udpClient(t)));
  for (const client of clients) await client.request('hello', port);
  t.equal(service().udp?.flowsActive, 5, 'five flows open');
  t.equal(service().backends[0]!.active, 5, 'five flows on the backend');
  await waitUntil('flows to expire', () => service().udp?.flowsExpired === 5, 3_000);
  const stats = service();
  t.equal(stats.udp?.flowsActive, 0, 'none open after the idle timeout');
  t.equal(stats.backends[0]!.active, 0, 'the backend has none either');
  await clients[0]!.request('again', port);
  t.equal(service().udp?.flowsCreated, 6, 'a datagram after expiry creates a new flow');
});

t.test('traffic keeps a flow alive past timeouts.idle', async (t) => {
  const backend = await startUdpBackend(t, 'echo');
  const { port, service } = await startUdpService(t, { backends: [backend.port], keys: ['timeouts: {idle: 400ms}'] });
  const client = await udpClient(t);
  for (let i = 0; i < 8; i++) {
    await client.request(`tick ${i}`, port);
    await delay(100);
  }
  t.equal(service().udp?.flowsCreated, 1, 'one flow for 800ms of traffic every 100ms');
  t.equal(service().udp?.flowsExpired, 0, 'never expired');
});

t.test('max_flows evicts the longest idle flow', async (t) => {
  const backend = await startUdpBackend(t, 'echo');
  // One worker: the table and its idle order are one.
  const { port, service } = await startUdpService(t, { backends: [backend.port], keys: ['max_flows: 4'] }, 1);
  const clients = await Promise.all(Array.from({ length: 6 }, () => udpClient(t)));
  for (const client of clients) {
    await client.request('hello', port);
    await delay(5); // distinct idle times
  }
  let stats = service();
  t.equal(stats.udp?.flowsCreated, 6, 'six flows created');
  t.equal(stats.udp?.flowsEvicted, 2, 'two evicted to stay at max_flows');
  t.equal(stats.udp?.flowsActive, 4, 'four open');
  // Clients 2..5 still have their flows (no new flow); client 0 was evicted.
  for (const client of clients.slice(2)) await client.request('still here', port);
  stats = service();
  t.equal(stats.udp?.flowsCreated, 6, 'the four most recent clients kept their flows');
  await clients[0]!.request('back', port);
  stats = service();
  t.equal(stats.udp?.flowsCreated, 7, 'the evicted client gets a new flow');
  t.equal(stats.udp?.flowsEvicted, 3, 'which evicted the longest idle one');
  t.equal(stats.udp?.flowsActive, 4, 'still at max_flows');
  t.equal(stats.backends[0]!.active, 4, 'the backend has four flows');
});

t.test('a backend stopped mid-stream: ICMP unreachable is a passive failure and its flows move', async (t) => {
  const backends = await Promise.all([startUdpBackend(t, 'id'), startUdpBackend(t, 'id')]);
  const { port, service, events } = await startUdpService(t, { backends: backends.map((b) => b.port) });
  const clients = await Promise.all(Array.from({ length: 40 }, () => udpClient(t)));
  const first = new Map<UdpClient, number>();
  for (const client of clients) first.set(client, answeredBy((await client.request('one', port)).data));
  const victim = backends[0]!;
  const onVictim = clients.filter((c) => first.get(c) === victim.port);
  const onOther = clients.filter((c) => first.get(c) !== victim.port);
  t.ok(onVictim.length > 0 && onOther.length > 0, `flows on both backends (${onVictim.length}, ${onOther.length})`);
  // Stream on, then stop the victim in the middle of it.
  for (const client of clients) t.equal(answeredBy((await client.request('two', port)).data), first.get(client), 'a flow keeps its backend');
  await victim.kill();
  for (const client of clients) {
    const reply = await client.request('three', port);
    t.equal(answeredBy(reply.data), backends[1]!.port, 'every flow now reaches the backend still running');
    t.equal(reply.data.subarray(reply.data.indexOf(0x7c) + 1).toString(), 'three', 'byte for byte');
  }
  const stats = service();
  t.equal(stats.udp?.flowsMoved, onVictim.length, 'exactly the victim\'s flows moved');
  t.equal(stats.udp?.flowsCreated, clients.length, 'moved, not recreated: one flow per client');
  const refused = events.filter((e) => e.type === 'connect_failed' && e.code === 'ECONNREFUSED');
  t.ok(refused.length >= 1, `connect_failed ECONNREFUSED events (${refused.length})`);
  t.ok(refused.every((e) => e.backend === victim.address && e.service === 'game'), 'all name the stopped backend and the service');
  t.ok(stats.backends[0]!.failed >= 1, 'the backend\'s failed counter counts the ICMP answers');
  t.equal(stats.backends[0]!.active, 0, 'no flow left on the stopped backend');
  t.equal(stats.backends[1]!.active, clients.length, 'all flows on the other');
});

t.test('a backend set down: its flows move on their next datagram, with nothing lost', async (t) => {
  const backends = await Promise.all([startUdpBackend(t, 'id'), startUdpBackend(t, 'id')]);
  const { engine, port, service } = await startUdpService(t, { backends: backends.map((b) => b.port) });
  const clients = await Promise.all(Array.from({ length: 30 }, () => udpClient(t)));
  const first = new Map<UdpClient, number>();
  for (const client of clients) first.set(client, answeredBy((await client.request('one', port)).data));
  const onDown = clients.filter((c) => first.get(c) === backends[0]!.port).length;
  engine.setBackendState('game', backends[0]!.address, 'down');
  for (const client of clients) {
    const before = client.received.length;
    await client.send('two', port);
    const reply = (await client.waitFor(before + 1, 2_000))[before]!;
    t.equal(answeredBy(reply.data), backends[1]!.port, 'the very next datagram reached the backend that is up');
  }
  t.equal(service().udp?.flowsMoved, onDown, 'the down backend\'s flows moved');
  engine.setBackendState('game', backends[0]!.address, 'up');
  for (const client of clients) t.equal(answeredBy((await client.request('three', port)).data), backends[1]!.port, 'a moved flow stays where it went');
});

t.test('request/response: udp.responses ends a flow after that many replies', async (t) => {
  // The backend answers every query three times; the service wants one.
  const backend = await startUdpBackend(t, 'echo', ['--replies', '3']);
  const { port, service } = await startUdpService(t, { backends: [backend.port], keys: ['udp: {responses: 1}'] });
  const QUERIES = 50;
  const clients = await Promise.all(Array.from({ length: QUERIES }, () => udpClient(t)));
  await Promise.all(clients.map((client, i) => client.request(`query ${i}`, port, HOST, 5, 1000)));
  await delay(200); // room for the extra copies to arrive, if they were forwarded
  t.ok(clients.every((c, i) => c.received.length === 1 && c.received[0]!.data.toString() === `query ${i}`), 'each client got exactly one reply, its own');
  await waitUntil('flows to complete', () => service().udp?.flowsCompleted === QUERIES);
  const stats = service();
  t.equal(stats.udp?.flowsActive, 0, 'no flow left open');
  t.equal(stats.udp?.flowsCreated, QUERIES, 'one flow per query');
  t.equal(stats.udp?.flowsExpired, 0, 'none waited for the idle timeout');
  t.equal(stats.backends[0]!.active, 0, 'the backend holds none');
});

t.test('request/response with responses: 2 forwards two replies, then closes', async (t) => {
  const backend = await startUdpBackend(t, 'echo', ['--replies', '3']);
  const { port, service } = await startUdpService(t, { backends: [backend.port], keys: ['udp: {responses: 2}'] });
  const client = await udpClient(t);
  await client.send('q', port);
  await client.waitFor(2);
  await delay(200);
  t.equal(client.received.length, 2, 'two replies, the third not forwarded');
  await waitUntil('the flow to complete', () => service().udp?.flowsCompleted === 1);
  t.equal(service().udp?.flowsActive, 0, 'closed');
});

t.test('a udp and a tcp service share a port number', async (t) => {
  const udpBackend = await startUdpBackend(t, 'echo');
  const tcpBackend = await startBackend(t, 'echo');
  const { engine, events } = startEngine(t);
  let port = 0;
  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    const yaml = [
      'services:',
      '  - name: game',
      '    protocol: udp',
      `    listen: ${HOST}:${port}`,
      '    backends:',
      `      - address: ${udpBackend.address}`,
      '  - name: rcon',
      `    listen: ${HOST}:${port}`,
      '    backends:',
      `      - address: ${tcpBackend.address}`,
      '',
    ].join('\n');
    try {
      engine.apply(parseConfig(yaml, 'shared-port.yaml'));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 4) throw err;
    }
  }
  await engine.whenApplied();
  const client = await udpClient(t);
  t.equal((await client.request('over udp', port)).data.toString(), 'over udp', 'udp reaches its backend');
  const conn = await openConn(t, port);
  await pingEcho(conn, 'over tcp\n');
  t.pass('tcp reaches its backend on the same port');
  const stats = engine.stats().services;
  t.equal(stats.find((s) => s.name === 'game')?.protocol, 'udp');
  t.equal(stats.find((s) => s.name === 'rcon')?.accepted, 1, 'one tcp connection');
  t.same(events.filter((e) => e.type === 'listener_error'), [], 'no listener errors');
});

t.test('reload: flows keep a backend that stays and move off one that was removed', async (t) => {
  const backends = await Promise.all([startUdpBackend(t, 'id'), startUdpBackend(t, 'id')]);
  const { engine, port, service } = await startUdpService(t, { backends: backends.map((b) => b.port) });
  const clients = await Promise.all(Array.from({ length: 30 }, () => udpClient(t)));
  const first = new Map<UdpClient, number>();
  for (const client of clients) first.set(client, answeredBy((await client.request('one', port)).data));
  const removed = backends[0]!;
  const kept = backends[1]!;
  const onRemoved = clients.filter((c) => first.get(c) === removed.port).length;
  // The same service without the first backend.
  engine.apply(parseConfig(udpServiceYaml(port, { backends: [kept.port] }, 2), 'reload.yaml'));
  await engine.whenApplied();
  for (const client of clients) {
    t.equal(answeredBy((await client.request('two', port)).data), kept.port, 'every flow is on the backend that stayed');
  }
  const stats = service();
  t.equal(stats.udp?.flowsMoved, onRemoved, 'only the removed backend\'s flows moved');
  t.equal(stats.udp?.flowsCreated, clients.length, 'no flow was recreated: the listener and its table stayed');
});

t.test('a drained backend\'s flows are closed when its drain timeout passes', async (t) => {
  const backend = await startUdpBackend(t, 'echo');
  const { engine, port, service } = await startUdpService(t, { backends: [backend.port], keys: ['drain_timeout: 200ms'] });
  const clients = await Promise.all(Array.from({ length: 5 }, () => udpClient(t)));
  for (const client of clients) await client.request('hello', port);
  engine.setBackendState('game', backend.address, 'drain');
  t.equal(service().udp?.flowsActive, 5, 'drain keeps open flows at first');
  await waitUntil('drained flows to close', () => service().udp?.flowsActive === 0, 3_000);
  t.equal(service().backends[0]!.active, 0, 'the backend has none');
});

t.test('IPv6: [::1] and the [::] wildcard, replies from the address the client sent to', async (t) => {
  const backend = await startUdpBackend(t, 'echo', ['--host', '::1']);
  for (const host of ['[::1]', '[::]']) {
    const engine = Engine.start({ workers: 2 });
    t.teardown(() => engine.stop());
    const port = await freeUdpPort();
    const yaml = ['services:', '  - name: v6', '    protocol: udp', `    listen: "${host}:${port}"`, '    backends:', `      - address: "[::1]:${backend.port}"`, ''].join('\n');
    engine.apply(parseConfig(yaml, 'v6.yaml'));
    await engine.whenApplied();
    const client = await udpClient(t, '::1');
    const payload = randomBytes(1200);
    const reply = await client.request(payload, port, '::1', 5, 1000);
    t.ok(reply.data.equals(payload), `${host}: byte for byte`);
    t.equal(reply.address, '::1', `${host}: the reply comes from ::1`);
    t.equal(reply.port, port, `${host}: and from the service port`);
    engine.stop();
  }
});

t.test('bursts of equal-size datagrams (joined for UDP GSO) arrive intact, in order, each on its own', async (t) => {
  const backend = await startUdpBackend(t, 'echo');
  const { port, service } = await startUdpService(t, { backends: [backend.port] });
  const client = await udpClient(t);
  await client.request('open the flow', port);
  // Sizes the relay may join (equal, small; the last of a run shorter) and
  // ones it must not (over its segment limit), sent back to back.
  const sizes = [...Array<number>(40).fill(200), 50, ...Array<number>(6).fill(1300), ...Array<number>(20).fill(64), 63, 64];
  const payloads = sizes.map((size, i) => {
    const p = randomBytes(size);
    p.writeUInt16BE(i, 0);
    return p;
  });
  const before = client.received.length;
  await Promise.all(payloads.map((p) => client.send(p, port)));
  const got = (await client.waitFor(before + payloads.length)).slice(before);
  t.equal(got.length, payloads.length, 'one reply per datagram');
  const byIndex = new Map(got.map((d) => [d.data.readUInt16BE(0), d.data]));
  t.ok(payloads.every((p, i) => byIndex.get(i)?.equals(p)), 'every datagram came back byte for byte, with its own size');
  const order = got.map((d) => d.data.readUInt16BE(0));
  t.same(order, [...order].sort((a, b) => a - b), 'in the order sent (one flow, one path)');
  t.equal(service().udp?.datagramsDropped, 0, 'nothing dropped');
});
