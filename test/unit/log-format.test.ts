// The log line formats: JSON with level names and ISO 8601 UTC times, and
// `log.format: text`, one readable line per event.
import t from 'tap';
import { createLogger } from '../../src/logger.js';
import { formatTextLine } from '../../src/log-text.js';
import { parseConfig } from '../../src/config/load.js';

function capture(format: 'json' | 'text'): { logger: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = [];
  return { logger: createLogger('debug', { write: (line: string) => void lines.push(line) }, format), lines };
}

t.test('json: the level is a name and the time ISO 8601 UTC', async (t) => {
  const { logger, lines } = capture('json');
  logger.warn({ service: 'db' }, 'backend down');
  logger.info('started');
  const [warn, info] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  t.match(warn, { level: 'warn', service: 'db', msg: 'backend down', name: 'fulcrum' });
  t.equal(info!.level, 'info');
  t.match(warn!.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'ISO time');
  t.ok(Math.abs(Date.parse(warn!.time as string) - Date.now()) < 60_000, 'the time is now');
});

t.test('text: one line per event, time, level, message, then the fields', async (t) => {
  const { logger, lines } = capture('text');
  logger.warn({ service: 'db', backend: '127.0.0.1:5432', reason: 'postgres check failed: login refused', active: 3, tags: ['a'] }, 'backend 127.0.0.1:5432 of db is down');
  logger.error({ err: Object.assign(new Error('bind failed'), { code: 'EADDRINUSE' }) }, 'admin API not started');
  t.equal(lines.length, 2);
  t.match(
    lines[0],
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARN  backend 127\.0\.0\.1:5432 of db is down service=db backend=127\.0\.0\.1:5432 reason="postgres check failed: login refused" active=3 tags=\["a"\]\n$/,
  );
  t.notMatch(lines[0], /pid=|hostname=|name=/, 'what every line shares is left out');
  t.match(lines[1], / ERROR admin API not started err="Error: EADDRINUSE: bind failed"\n$/);
  t.equal(lines[1]!.split('\n').length, 2, 'the stack is not on the line');
  t.equal(formatTextLine('not json\n'), 'not json\n', 'anything else passes unchanged');
});

t.test('log.format is a config key: json by default, text when asked', async (t) => {
  const service = 'services:\n  - name: a\n    listen: 127.0.0.1:7000\n    backends: [{ address: 127.0.0.1:7001 }]\n';
  t.equal(parseConfig(service, 'a.yaml').log.format, 'json');
  t.equal(parseConfig(`log: { format: text }\n${service}`, 'b.yaml').log.format, 'text');
});
