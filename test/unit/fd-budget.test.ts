// The connection budget from RLIMIT_NOFILE, and the accept-pause log lines:
// one per episode, at most one a minute, each saying what limit to raise.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { AcceptPauseLog, PAUSE_LOG_INTERVAL_MS } from '../../src/commands/accept-pause-log.js';
import { parseConfig } from '../../src/config/load.js';
import { connectionBudget, readFdLimit } from '../../src/engine/fd-budget.js';
import { createLogger } from '../../src/logger.js';
import { tempDir } from '../helpers/cli.js';

const config = parseConfig(
  [
    'services:',
    '  - name: a',
    '    listen: 127.0.0.1:7000',
    '    backends:',
    '      - {address: 127.0.0.1:7001, health_check: {type: tcp}}',
    '      - {address: 127.0.0.1:7002}',
    '  - name: b',
    '    listen: 127.0.0.1:7100',
    '    backends: [{address: 127.0.0.1:7101}]',
    '',
  ].join('\n'),
  'budget.yaml',
);

t.test('the budget keeps a reserve and gives 2.5 descriptors to each connection', async (t) => {
  // 64 base + 2x2 workers + 2 services x 2 workers + admin 1024/32 = 32 + 1 check + 16 slack = 121
  t.strictSame(connectionBudget(1024, config, 2), { fdLimit: 1024, reserve: 121, adminConnections: 32, maxConnections: 361 });
  // The admin reserve is admin.max_connections (256) once the limit allows it.
  t.strictSame(connectionBudget(20_000, config, 2), { fdLimit: 20_000, reserve: 345, adminConnections: 256, maxConnections: 7862 });
  // A tiny limit: a quarter of it as the base, and at least one connection.
  t.equal(connectionBudget(96, config, 2).reserve, 24 + 4 + 4 + 16 + 1 + 16);
  t.equal(connectionBudget(40, config, 2).maxConnections, 1);
});

t.test('readFdLimit reads the soft limit', async (t) => {
  const file = join(tempDir(t), 'limits');
  writeFileSync(file, 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 20000                files\n');
  t.equal(readFdLimit(file), 1024);
  writeFileSync(file, 'Max open files            unlimited            unlimited            files\n');
  t.equal(readFdLimit(file), undefined, 'unlimited: no budget');
  t.equal(readFdLimit(join(tempDir(t), 'missing')), undefined);
  t.ok((readFdLimit() ?? 0) > 0, "this process's own");
});

t.test('one pause line per minute at most, with a resume line for each logged pause', async (t) => {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger('info', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  let now = 1_000_000;
  const log = new AcceptPauseLog(logger, connectionBudget(1024, config, 2), () => now);
  for (let i = 0; i < 100; i++) {
    log.handle({ type: 'accept_paused', worker: i % 2 });
    now += 100;
    log.handle({ type: 'accept_resumed', worker: i % 2 });
    now += 100;
  }
  t.same(lines.map((l) => l.msg), ['accept_paused', 'accept_resumed'], '100 episodes in 20 s: one pause and its resume');
  t.match(lines[0], { level: 'warn', reason: 'connection_budget', maxConnections: 361, fdLimit: 1024, why: /361 connections are open.*RLIMIT_NOFILE 1024.*raise the file descriptor limit/ });
  t.match(lines[1], { level: 'info', pausedMs: 100 });
  now += PAUSE_LOG_INTERVAL_MS;
  log.handle({ type: 'accept_paused', worker: 0, code: 'EMFILE' });
  t.match(lines[2], { msg: 'accept_paused', reason: 'EMFILE', pausesNotLogged: 99, why: /ran out of file descriptors \(EMFILE\)/ });
  t.equal(log.handle({ type: 'connect_failed', worker: 0 }), false, 'other events are not its own');
});
