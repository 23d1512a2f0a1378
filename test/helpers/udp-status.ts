// A runtime with one protocol: udp service whose counters hold known values,
// for the tests of the views that show them (`fulcrum status`, the status
// page): one worker (so max_flows evicts deterministically), max_flows 2, one
// real echo backend process, and FLOWS clients that each send DATAGRAMS
// datagrams of SIZE bytes, one client after the other. The third flow evicts
// the first (the longest idle), so: 3 flows created, 2 active, 1 evicted,
// 15 datagrams and 960 bytes each way.
import type { Test } from 'tap';
import { TOKEN, http, startRuntime, type RuntimeUnderTest } from './admin.js';
import { startUdpBackend, udpClient, type UdpBackend } from './udp.js';

export const FLOWS = 3;
export const DATAGRAMS = 5;
export const SIZE = 64;

export interface UdpStatusRuntime extends RuntimeUnderTest {
  port: number;
  backend: UdpBackend;
}

export async function startUdpStatusRuntime(t: Test): Promise<UdpStatusRuntime> {
  const backend = await startUdpBackend(t, 'echo');
  const running = await startRuntime(t, (listenPort) =>
    [
      'workers: 1',
      `admin: { token: ${TOKEN} }`,
      'services:',
      '  - name: game',
      '    protocol: udp',
      `    listen: 127.0.0.1:${listenPort}`,
      '    max_flows: 2',
      '    backends:',
      `      - address: ${backend.address}`,
      '',
    ].join('\n'), { workers: 1 });
  for (let flow = 0; flow < FLOWS; flow++) {
    const client = await udpClient(t);
    for (let i = 0; i < DATAGRAMS; i++) await client.send(Buffer.alloc(SIZE, 0x41 + flow * DATAGRAMS + i), running.port);
    const replies = await client.waitFor(DATAGRAMS);
    t.equal(replies.length, DATAGRAMS, `flow ${flow + 1}: ${DATAGRAMS} replies`);
  }
  // A reply is counted just after it is sent: wait (bounded, 5 s) until the
  // API shows the last one, so every view reads the same settled numbers.
  const total = FLOWS * DATAGRAMS;
  for (let i = 0; i < 100; i++) {
    const view = (await http(running.base, 'GET', '/api/services/game', { token: TOKEN })).json as { udp: { datagramsOut: number } };
    if (view.udp.datagramsOut >= total) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { ...running, backend };
}
