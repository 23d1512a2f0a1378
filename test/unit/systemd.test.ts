// The pure parts of the systemd integration: the notify datagram's text, the
// watchdog's interval and stuck-worker rule, and journald priority prefixes.
import t from 'tap';
import { notifyMessage, notifySocket } from '../../src/systemd/notify.js';
import { stuckWorkers, watchdogPingMs, WORKER_STALE_MS } from '../../src/systemd/service-notifier.js';
import { priorityPrefix } from '../../src/systemd/journal.js';
import { formatTextLine } from '../../src/log-text.js';

t.test('the notify datagram: one KEY=VALUE line per field, in order, values kept to one line', async (t) => {
  t.equal(notifyMessage({ READY: 1, STATUS: '2 services, 3/4 backends up' }), 'READY=1\nSTATUS=2 services, 3/4 backends up\n');
  t.equal(notifyMessage({ STATUS: 'a\nSTOPPING=1\r\nb' }), 'STATUS=a STOPPING=1 b\n', 'a newline cannot inject a field');
  t.equal(notifyMessage({ MAINPID: 4242 }), 'MAINPID=4242\n');
  t.throws(() => notifyMessage({ 'ready': 1 }), /field name 'ready'/);
  t.throws(() => notifyMessage({ 'A=B': 1 }), /field name/);
});

t.test('NOTIFY_SOCKET unset or empty: not under systemd', async (t) => {
  t.equal(notifySocket({}), undefined);
  t.equal(notifySocket({ NOTIFY_SOCKET: '' }), undefined);
  t.equal(notifySocket({ NOTIFY_SOCKET: '/run/systemd/notify' }), '/run/systemd/notify');
});

t.test('watchdog: pings at half of WATCHDOG_USEC, only for the process WATCHDOG_PID names', async (t) => {
  t.equal(watchdogPingMs({ WATCHDOG_USEC: '20000000' }), 10_000);
  t.equal(watchdogPingMs({ WATCHDOG_USEC: '200000' }), 100);
  t.equal(watchdogPingMs({ WATCHDOG_USEC: '1' }), 1, 'never a zero interval');
  t.equal(watchdogPingMs({}), undefined);
  t.equal(watchdogPingMs({ WATCHDOG_USEC: 'soon' }), undefined);
  t.equal(watchdogPingMs({ WATCHDOG_USEC: '0' }), undefined);
  t.equal(watchdogPingMs({ WATCHDOG_USEC: '200000', WATCHDOG_PID: '7' }, 7), 100);
  t.equal(watchdogPingMs({ WATCHDOG_USEC: '200000', WATCHDOG_PID: '8' }, 7), undefined, 'meant for another process');
});

t.test('a worker whose loop has not turned within the stale time, or never, is stuck', async (t) => {
  const now = 1_000_000;
  t.same(stuckWorkers([now - 10, now - 900], now), []);
  t.same(stuckWorkers([now - 10, now - WORKER_STALE_MS - 1, now], now), [1]);
  t.same(stuckWorkers([0, now], now), [0], 'never turned');
  t.same(stuckWorkers([], now), []);
  t.same(stuckWorkers([now - WORKER_STALE_MS], now), [], 'exactly the stale time is still alive');
});

t.test('journald priority prefixes by level, for JSON and text lines alike', async (t) => {
  const line = (level: string): string => `{"level":"${level}","time":"2026-12-07T16:30:00.123Z","msg":"m"}\n`;
  const expected: Record<string, string> = { fatal: '<2>', error: '<3>', warn: '<4>', info: '<6>', debug: '<7>', trace: '<7>' };
  for (const [level, prefix] of Object.entries(expected)) t.equal(priorityPrefix(line(level)), prefix, level);
  t.equal(priorityPrefix('not json\n'), '<6>', 'a line without a level is info');
  t.equal(priorityPrefix(line('warn')) + formatTextLine(line('warn')), '<4>2026-12-07T16:30:00.123Z WARN  m\n');
});
