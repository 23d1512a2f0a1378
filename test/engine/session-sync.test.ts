// Session sync (src/sync/) between two engines in this process: they
// exchange sticky entries over loopback UDP, so a client keeps its backend on
// the other node. (test/unit/sync-wire.test.ts: the wire format and the
// replay window.)
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import { SessionSync } from '../../src/sync/session-sync.js';
import { encodeMessage } from '../../src/sync/wire.js';
import { freePort, startIdBackends, whoAnswers } from '../helpers/backends.js';
import { serviceYaml, SERVICE, startEngine } from '../helpers/engine.js';
import { freeUdpPort } from '../helpers/udp.js';
import { waitUntil } from '../helpers/traffic.js';
import { hashSourceIpv4 } from '../system/helpers/flow-hash.mjs';
import { createLogger } from '../../src/logger.js';

t.test('two engines share sticky entries over loopback: a client keeps its backend on the other node', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fulsync-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, 'key');
  writeFileSync(keyFile, 'a unit-test key of 32 bytes!!!!!\n');
  const backends = await startIdBackends(t, 3);
  const [syncA, syncB] = [await freeUdpPort(), await freeUdpPort()];
  const logger = createLogger('error');
  const node = async (listen: string, peer: string) => {
    const { engine } = startEngine(t, 1);
    const port = await freePort();
    const yaml = `${serviceYaml(port, { backends: backends.map((b) => b.port), keys: ['sticky: {key: source, timeout: 10m}'] }, 1)}sync:\n  listen: ${listen}\n  peers: [${peer}]\n  key_file: ${keyFile}\n  interval: 20ms\n`;
    const config = parseConfig(yaml, join(dir, 'node.yaml'));
    engine.apply(config);
    const sync = new SessionSync({ config: config.sync!, engine, serviceNames: () => [SERVICE], logger });
    await sync.start();
    t.teardown(() => sync.stop());
    return { engine, port, sync };
  };
  const a = await node(`127.0.0.1:${syncA}`, `127.0.0.2:${syncB}`);
  const b = await node(`127.0.0.2:${syncB}`, `127.0.0.1:${syncA}`);

  t.equal(await whoAnswers(t, a.port, '127.0.0.5'), 'a', 'another client takes node A\'s first turn');
  t.equal(await whoAnswers(t, a.port, '127.0.0.1'), 'b', 'the client lands on b at node A');
  await waitUntil('node B installed the entries', () => b.sync.status().counters.recordsInstalled >= 2, 5_000);
  t.equal(await whoAnswers(t, b.port, '127.0.0.1'), 'b', 'node B sends the client to b (its own first turn would be a)');
  t.equal(await whoAnswers(t, b.port, '127.0.0.5'), 'a', 'and the other client to a');
  t.equal(a.sync.status().peers[0]!.messagesAccepted > 0 || b.sync.status().peers[0]!.messagesAccepted > 0, true, 'messages were accepted');

  // A record built by hand with the test helper's hash of 127.0.0.9 names that client's entry.
  const installed = b.engine.installSessionRecords([{ kind: 'sticky', service: SERVICE, backend: `127.0.0.1:${backends[2]!.port}`, ageMs: 0, key: hashSourceIpv4('127.0.0.9') }]);
  t.same(installed, { installed: 1, unknown: 0 }, 'installed');
  t.equal(await whoAnswers(t, b.port, '127.0.0.9'), 'c', 'the helper\'s hash matches the engine\'s');
  t.same(b.engine.installSessionRecords([{ kind: 'sticky', service: 'nope', backend: '127.0.0.1:1', ageMs: 0, key: 5n }]), { installed: 0, unknown: 1 }, 'an unknown service is counted, not installed');

  // A hostile datagram from a non-peer address changes nothing.
  const { createSocket } = await import('node:dgram');
  const hostile = createSocket('udp4');
  await new Promise<void>((resolve) => hostile.bind(0, '127.0.0.3', () => resolve()));
  const forged = encodeMessage(Buffer.from('a unit-test key of 32 bytes!!!!!'), { incarnation: BigInt(Date.now()), sequence: 1n, sentAt: Date.now() },
    [{ kind: 'sticky', service: SERVICE, backend: `127.0.0.1:${backends[0]!.port}`, ageMs: 0, key: hashSourceIpv4('127.0.0.1') }]);
  await new Promise<void>((resolve) => hostile.send(forged, syncB, '127.0.0.2', () => resolve()));
  await waitUntil('counted', () => b.sync.status().rejected.notPeer === 1, 5_000);
  hostile.close();
  t.equal(await whoAnswers(t, b.port, '127.0.0.1'), 'b', 'a validly signed message from a non-peer address is not applied');
});
