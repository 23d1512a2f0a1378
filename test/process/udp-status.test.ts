// `fulcrum status` for protocol: udp services, as a user runs it (the CLI as a
// child process against a real runtime): the flow table's counters and
// datagrams each way in the text table, exact after real traffic, and in
// --json. (test/unit/status-format.test.ts: the text format itself.)
import t from 'tap';
import { TOKEN } from '../helpers/admin.js';
import { runCli, writeConfig } from '../helpers/cli.js';
import { DATAGRAMS, FLOWS, SIZE, startUdpStatusRuntime } from '../helpers/udp-status.js';

t.test('`fulcrum status` shows a udp service\'s flows and datagrams after 3 flows x 5 datagrams; --json carries them', async (t) => {
  const running = await startUdpStatusRuntime(t);
  const tokenFile = writeConfig(t, `${TOKEN}\n`, 'admin.token');
  const admin = running.base.replace(/^http:\/\//, '');
  const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const total = FLOWS * DATAGRAMS;
  const bytes = `${total * SIZE} B`;

  const table = await runCli(t, ['status', '--admin', admin, '--token-file', tokenFile]);
  t.equal(table.code, 0, table.stderr);
  const lines = table.stdout.split('\n');
  t.match(lines[0], /^fulcrum \S+, pid \d+, up \d+m \d+s, 1 workers$/);
  t.match(lines[3], /^SERVICE\s+BACKEND\s+STATE\s+SINCE\s+HEALTH\s+ADMIN\s+WEIGHT\s+ACTIVE\s+PEAK\s+CONN\/S\s+TOTAL\s+FAILED\s+IN\s+OUT\s+DGRAMS IN\s+DGRAMS OUT\s+LAST CHECK$/);
  t.match(lines[4], new RegExp(`^game\\s+127\\.0\\.0\\.1:${running.port} maglev\\s+1/1 up\\s+2\\s+\\d+\\s+3\\s+0\\s+${bytes}\\s+${bytes}\\s+${total}\\s+${total}$`), 'service row: 2 flows active, 3 created, 0 dropped; 15 datagrams each way');
  t.match(lines[5], /^\s+flows: 2 active, 3 created, 0 expired, 1 evicted, 0 completed, 0 moved, 0 dropped; datagrams dropped: 0$/, 'the flow table line');
  t.match(lines[6], /^\s+ended: 1 evicted$/, 'how its flows ended: the one evicted (the others are open)');
  t.match(lines[7], new RegExp(`^\\s+${esc(running.backend.address)}\\s+up\\s+\\d+m \\d+s\\s+up\\s+enabled\\s+1\\s+2\\s+\\d+\\/-\\s+\\d+\\s+3\\s+0\\s+${bytes}\\s+${bytes}\\s+${total}\\s+${total}\\s+-$`), 'backend row: 2 flows, 3 given, 15 datagrams each way');
  t.match(lines.at(-2), /^udp services: ACTIVE and TOTAL count flows;/);

  const json = await runCli(t, ['status', '--admin', admin, '--token-file', tokenFile, '--json']);
  t.equal(json.code, 0, json.stderr);
  const doc = JSON.parse(json.stdout);
  t.same(doc.services[0].udp, {
    datagramsIn: total, datagramsOut: total, datagramsDropped: 0,
    flowsCreated: 3, flowsActive: 2, flowsExpired: 0, flowsEvicted: 1, flowsCompleted: 0, flowsMoved: 0, flowsDropped: 0,
  }, '--json: the flow table, every counter');
  t.same(doc.services[0].backends[0].udp, { datagramsIn: total, datagramsOut: total }, '--json: the backend\'s datagrams');
  t.match(doc.services[0].backends[0], { accepted: 3, active: 2, failed: 0, bytesIn: total * SIZE, bytesOut: total * SIZE });
});
