// A UDP service on a VRRP VIP starts on the user-space relay while the node
// is Backup (no interface owns the VIP) and moves to the kernel datapath once
// it becomes Master and adds the VIP, without a reload
// (UdpKernelDatapath::start_waiting). A lone node becomes Master after its
// master-down interval (3 x 1 s + skew): the failover of a node whose peer
// went silent. In network namespaces this test creates and removes (prefix
// fulkf-<pid>-). Needs root and Linux >= 6.6 (tcx).
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, waitFor } from './helpers/ha-rig.mjs';
import { BACKENDS, KernelNatRig, must } from './helpers/kernel-nat-rig.js';

const ADMIN = '127.0.0.1:18409';
const VIP = '10.203.1.100';
const GAME = `${VIP}:7000`;

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root (network namespaces, BPF)');
  process.exit(0);
}

t.test('datapath auto: a listen address that arrives later (a failover) moves the service to the kernel path, no reload', { timeout: 60_000 }, async (t) => {
  const rig = await KernelNatRig.create(t, 'fulkf-');
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-udp-kernel-failover-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await rig.startBackends(t);
  const config = join(dir, 'fulcrum.yaml');
  const backends = BACKENDS.map((ip) => `{address: "${ip}:9000"}`).join(', ');
  writeFileSync(config, `workers: 1
log: {level: info}
admin: {listen: ${ADMIN}}
ha:
  interface: front
  vrid: 61
  priority: 100
  virtual_ips: [${VIP}/32]
  advert_interval: 1s
services:
  - name: game
    protocol: udp
    listen: ${GAME}
    backends: [${backends}]
`);
  const fulcrum = rig.spawn(t, 'p', process.execPath, [CLI, 'run', '-c', config]);
  const started = await waitFor(async () => (await rig.metric(ADMIN, 'fulcrum_udp_datapath_kernel', 'service="game"')) === 0, 20_000);
  t.ok(started, `Fulcrum serves game on the relay while no interface owns ${VIP}${started ? '' : `: ${fulcrum.stdout()}${fulcrum.stderr()}`}`);
  const status = JSON.parse(await rig.admin(ADMIN, 'GET', '/api/status'));
  const game = status.services.find((s: { name: string }) => s.name === 'game');
  t.match(JSON.stringify(game.datapath), /no interface owns the listen address 10\.203\.1\.100 \(yet\)/, 'and says why');

  // No peer answers: the node becomes Master, adds the VIP, and the sweeper
  // starts the kernel path within a second of that.
  const moved = await waitFor(async () => (await rig.metric(ADMIN, 'fulcrum_udp_datapath_kernel', 'service="game"')) === 1, 10_000, 100);
  t.ok(moved, 'once Master (the VIP on front), the service runs on the kernel datapath');
  const owner = await must('ip', ['-n', rig.ns('p'), '-4', 'addr', 'show', 'dev', 'front']);
  t.match(owner, new RegExp(`inet ${VIP.replace(/\./g, '\\.')}/32`), 'VRRP added the VIP');

  const client = rig.startClient(t);
  t.same(await client({ op: 'open', count: 20 }), { flows: 20 }, '20 flows');
  for (const size of [64, 1400]) {
    t.same(await client({ op: 'echo', size, target: GAME }), { exact: 20, timeouts: 0, wrongSource: 0, total: 20 }, `${size} B: 20 byte-exact echoes through ${VIP}`);
  }
  const requests = await rig.metric(ADMIN, 'fulcrum_udp_kernel_datagrams_total', 'service="game",direction="request"');
  t.ok((requests ?? 0) >= 40, `the programs NATed them (${requests} requests counted in the kernel)`);
  await client({ op: 'close' });
});
