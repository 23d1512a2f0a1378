// Consistency across nodes (docs/ecmp.md): two separately started Fulcrum
// processes with the same config send every 5-tuple to the same backend under
// balance: maglev, because Maglev's table is built from the backends'
// addresses and the 5-tuple hash has fixed seeds: nothing depends on the node,
// the process or the order of start. So when ECMP moves a UDP flow to another
// node it reaches the same game server, with or without sync:.
import t from 'tap';
import { freePort } from '../helpers/backends.js';
import { startCli, writeConfig, type CliProcess } from '../helpers/cli.js';
import { freeUdpPort, startUdpBackend, udpClient, type UdpClient } from '../helpers/udp.js';

const FLOWS = 64;

t.test('two fulcrum processes started apart map the same 5-tuples to the same backends', async (t) => {
  const backends = await Promise.all([0, 1, 2, 3].map(() => startUdpBackend(t, 'id')));
  const port = await freeUdpPort();
  const yaml = `workers: 2
log:
  level: info
admin:
  listen: 127.0.0.1:${await freePort()}
services:
  - name: game
    protocol: udp
    listen: 127.0.0.1:${port}
    balance: maglev
    backends:
${backends.map((b) => `      - address: ${b.address}`).join('\n')}
`;
  const clients: UdpClient[] = [];
  for (let i = 0; i < FLOWS; i++) clients.push(await udpClient(t));

  /** Run one fulcrum process, send one datagram per flow, return the backend port each reply names. */
  const round = async (name: string): Promise<string[]> => {
    const proc: CliProcess = startCli(t, ['run', '-c', writeConfig(t, yaml, `${name}.yaml`)]);
    await proc.waitForLog('listening');
    const answers = await Promise.all(clients.map(async (c, i) => (await c.request(`${name}:${i}`, port)).data.toString().split('|')[0]!));
    proc.signal('SIGTERM');
    await proc.waitForExit(10_000);
    return answers;
  };
  const first = await round('first');
  const second = await round('second');
  t.equal(new Set(first).size, backends.length, `the flows are spread over all ${backends.length} backends`);
  t.same(second, first, `all ${FLOWS} flows (same client ports) reach the same backend on the second process`);
});
