// Session sync across an upgrade (src/sync/session-sync.ts, "Upgrade"), with
// three engines in this process: a peer P, the old process O and the new
// process N. O copies its table to N, both tell each other what they add
// while they overlap (O passes N's on to P), then O hands its socket over and
// N goes on with O's incarnation: P takes N's messages as O's (no replay
// rejection, no resync) and N takes P's.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import type { SessionRecord } from '../../src/engine/sync-records.js';
import { loadNative } from '../../src/engine/native.js';
import { createLogger } from '../../src/logger.js';
import { SessionSync } from '../../src/sync/session-sync.js';
import { freePort, startIdBackends, whoAnswers } from '../helpers/backends.js';
import { serviceYaml, SERVICE, startEngine } from '../helpers/engine.js';
import { waitUntil } from '../helpers/traffic.js';
import { freeUdpPort } from '../helpers/udp.js';

t.test('an upgrade hands session sync over: the table, the overlap both ways, then the socket and the incarnation', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fulsyncup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, 'key');
  writeFileSync(keyFile, 'an upgrade test key of 32 bytes!\n');
  const backends = await startIdBackends(t, 3);
  const [syncO, syncP] = [await freeUdpPort(), await freeUdpPort()];
  const logger = createLogger('error');
  const node = (listen: string, peer: string) => {
    const { engine } = startEngine(t, 1);
    const yaml = (port: number): string =>
      `${serviceYaml(port, { backends: backends.map((b) => b.port), keys: ['sticky: {key: source, timeout: 10m}'] }, 1)}sync:\n  listen: ${listen}\n  peers: [${peer}]\n  key_file: ${keyFile}\n  interval: 20ms\n`;
    return { engine, yaml };
  };
  const start = async (listen: string, peer: string, run: boolean) => {
    const { engine, yaml } = node(listen, peer);
    const port = await freePort();
    const config = parseConfig(yaml(port), join(dir, 'node.yaml'));
    engine.apply(config);
    const sync = new SessionSync({ config: config.sync!, engine, serviceNames: () => [SERVICE], logger });
    if (run) await sync.start();
    t.teardown(() => sync.stop());
    return { engine, port, sync };
  };
  const p = await start(`127.0.0.2:${syncP}`, `127.0.0.1:${syncO}`, true);
  const o = await start(`127.0.0.1:${syncO}`, `127.0.0.2:${syncP}`, true);
  t.equal(await whoAnswers(t, p.port, '127.0.0.6'), 'a', "a client of P's takes P's first turn (P's next picks differ from N's)");
  t.equal(await whoAnswers(t, o.port, '127.0.0.5'), 'a', "another client takes O's first turn");
  t.equal(await whoAnswers(t, o.port, '127.0.0.1'), 'b', 'the client lands on b at O');

  // N starts: O's whole table first (what inheritance.ts installs before N serves).
  const n = await start(`127.0.0.1:${syncO}`, `127.0.0.2:${syncP}`, false);
  const copy: SessionRecord[] = [];
  await o.sync.copyTo({ records: (records) => copy.push(...records) });
  t.ok(copy.length >= 2, `O copied ${copy.length} entries`);
  t.equal(n.engine.installSessionRecords(copy).installed, copy.length, 'N installed them');
  t.equal(await whoAnswers(t, n.port, '127.0.0.1'), 'b', 'N sends the client to b (its own first turn would be a)');

  // Both serve: what each adds goes to the other; O passes N's on to P.
  n.sync.startLinked({ records: (records) => o.sync.fromLink(records) });
  o.sync.setLink({ records: (records) => n.sync.fromLink(records) });
  t.equal(n.sync.resyncing(), false, 'N holds nothing back: O taught it');
  const firstAtN = await whoAnswers(t, n.port, '127.0.0.7');
  const pInstalled = p.sync.status().counters.recordsInstalled!;
  await waitUntil("O and P learnt N's new client", () => o.sync.status().counters.recordsInstalled! >= 1 && p.sync.status().counters.recordsInstalled! > pInstalled, 5_000);
  t.equal(await whoAnswers(t, o.port, '127.0.0.7'), firstAtN, "O sends N's new client where N did");
  t.equal(await whoAnswers(t, p.port, '127.0.0.7'), firstAtN, 'and so does P, through O');

  // The handover: O's socket (a duplicate, as SCM_RIGHTS gives the new process) and its incarnation.
  const before = p.sync.status();
  const handover = o.sync.handOver()!;
  t.ok(handover !== undefined, 'O hands over');
  const fdPassing = loadNative().fdPassing;
  const [x, y] = fdPassing.socketPair();
  fdPassing.send(x, 'sync', [handover.fd]);
  const dup = fdPassing.receive(y, 1000)!.fds[0]!;
  fdPassing.close(x);
  fdPassing.close(y);
  o.sync.stop();
  await n.sync.adopt(dup, handover.incarnation, handover.sequence);
  t.equal(n.sync.status().listen, `127.0.0.1:${syncO}`);
  const atN = await whoAnswers(t, n.port, '127.0.0.8');
  await waitUntil('P installed what N sends', () => p.sync.status().counters.recordsInstalled! > before.counters.recordsInstalled! && p.sync.status().peers[0]!.messagesAccepted > before.peers[0]!.messagesAccepted, 5_000);
  t.equal(await whoAnswers(t, p.port, '127.0.0.8'), atN, "P sends N's client where N did");
  const after = p.sync.status();
  t.equal(after.rejected.replay, 0, 'P rejected nothing as a replay');
  t.equal(after.peers[0]!.incarnation, before.peers[0]!.incarnation, 'P sees the same incarnation: one sender that never restarted');
  t.equal(after.peers[0]!.dumpsSent, before.peers[0]!.dumpsSent, 'so it sends no new full copy');
  const nInstalled = n.sync.status().counters.recordsInstalled!;
  const atP = await whoAnswers(t, p.port, '127.0.0.9');
  await waitUntil("N installed P's new client", () => n.sync.status().counters.recordsInstalled! > nInstalled, 5_000);
  t.equal(await whoAnswers(t, n.port, '127.0.0.9'), atP, "N sends P's new client where P did: it hears P on the socket it adopted");
});
