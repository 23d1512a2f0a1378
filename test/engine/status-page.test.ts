// The status page in a real browser: Debian's chromium driven by playwright-core,
// headless, with a fresh empty profile. The page asks for the token, loads,
// shows a backend going down within one refresh, and its drain button drains
// the backend in the engine. A screenshot is kept for a human to look at
// (FULCRUM_STATUS_SCREENSHOT=path.png to choose where). At 1366x768 (a
// laptop) and 1400 px the whole table, Actions included, fits without a
// horizontal scrollbar; the HAProxy-style columns (session rate, peak against
// max_connections, queue, backup, down transitions and downtime, the check's
// role apart from its type) show what the API says; that screenshot is kept
// in test/artifacts/ (gitignored).
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import t, { type Test } from 'tap';
import type { AnnounceVipStatus } from '../../src/announce/announcer.js';
import { REFRESH_MS } from '../../src/admin/status-page.js';
import { freePort, startServer } from '../helpers/backends.js';
import { startRedis } from '../helpers/db-servers.js';
import { TOKEN, http, startRuntime } from '../helpers/admin.js';
import { echoStream, openConn, pingEcho, waitUntil } from '../helpers/traffic.js';
import { DATAGRAMS, FLOWS, SIZE, startUdpStatusRuntime } from '../helpers/udp-status.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

async function launch(t: Test, viewport = { width: 1500, height: 620 }): Promise<Page> {
  const profile = mkdtempSync(join(tmpdir(), 'fulcrum-chromium-'));
  // launchPersistentContext passes the profile as --user-data-dir: a new, empty one per test.
  const context: BrowserContext = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
    timeout: 30_000,
  });
  t.teardown(async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  });
  return context.pages()[0] ?? (await context.newPage());
}

/** The status page at `base`, the token given when it asks; `errors` collects the page's script errors. */
async function openPage(t: Test, base: string, viewport?: { width: number; height: number }): Promise<{ page: Page; errors: string[] }> {
  const page = await launch(t, viewport);
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('dialog', (dialog) => void dialog.accept(TOKEN));
  await page.goto(`${base}/`);
  return { page, errors };
}

const yaml = (backends: number[]) => (port: number): string =>
  [
    'workers: 2',
    `admin: { token: ${TOKEN} }`,
    'services:',
    '  - name: postgres',
    `    listen: 127.0.0.1:${port}`,
    '    balance: leastconn',
    '    backends:',
    ...backends.map((p) => `      - address: 127.0.0.1:${p}`),
    '',
  ].join('\n');

t.test('status page in headless Chromium: loads, shows a backend down within one refresh, drains one', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (Debian package chromium, .ci/apt/admin.list)` }, async (t) => {
  const ports: number[] = [];
  for (let i = 0; i < 3; i++) ports.push((await startServer(t, (socket) => socket.pipe(socket))).port);
  const [A, B, C] = ports.map((p) => `127.0.0.1:${p}`) as [string, string, string];
  const { base, port, runtime } = await startRuntime(t, yaml(ports));
  // Some traffic, so the counters and rates have something to show.
  await echoStream(t, port, 'page-1', 2_000_000, 10_000);
  const held = await openConn(t, port);

  const page = await launch(t);
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  let prompted = 0;
  page.on('dialog', (dialog) => {
    prompted++;
    t.equal(dialog.type(), 'prompt');
    void dialog.accept(TOKEN);
  });

  await page.goto(`${base}/`);
  const state = (address: string) => page.locator(`tr[data-backend="postgres/${address}"] td.state`);
  await state(A).waitFor({ timeout: 10_000 });
  t.equal(prompted, 1, 'asked for the token once');
  t.equal(await page.evaluate(() => localStorage.getItem('fulcrum-admin-token')), TOKEN, 'and kept it');
  t.equal(await page.title(), 'Fulcrum status');
  for (const address of [A, B, C]) t.equal(await state(address).textContent(), 'up', `${address} shown up`);
  t.match(await page.locator('table[data-service="postgres"] caption').textContent(), /postgres 127\.0\.0\.1:\d+ · leastconn · 3\/3 backends up/);

  // Health says down: the page shows it within one refresh.
  const downAt = Date.now();
  runtime.control.setHealth('postgres', B, 'down');
  await page.waitForFunction(
    (address) => document.querySelector(`tr[data-backend="postgres/${address}"] td.state`)?.textContent === 'down',
    B,
    { timeout: REFRESH_MS + 1000, polling: 50 },
  );
  const shownAfter = Date.now() - downAt;
  t.ok(shownAfter <= REFRESH_MS + 1000, `down shown after ${shownAfter} ms (refresh every ${REFRESH_MS} ms)`);
  t.equal(await page.locator(`tr[data-backend="postgres/${B}"] td.health`).textContent(), 'down');
  t.match(await page.locator(`tr[data-backend="postgres/${B}"] td.since`).textContent(), /^0m [0-4]s$/, 'down since a moment ago');
  t.match(await page.locator(`tr[data-backend="postgres/${B}"]`).getAttribute('class'), /state-down/);

  // The drain button POSTs to the API: the engine drains the backend.
  await page.locator(`button[data-action="drain"][data-backend="${C}"]`).click();
  const deadline = Date.now() + 5_000;
  const engineState = (): string | undefined => runtime.engine.stats().services[0]!.backends.find((b) => b.address === C)?.state;
  while (engineState() !== 'drain' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.equal(engineState(), 'drain', 'the engine runs the backend as drain');
  t.equal(runtime.control.status('postgres', C).admin, 'drain');
  await page.waitForFunction((address) => document.querySelector(`tr[data-backend="postgres/${address}"] td.state`)?.textContent === 'drain', C, { timeout: 3_000 });

  // Throughput: traffic keeps flowing over two refreshes, and the page shows a rate.
  const flowing = (async () => {
    const until = Date.now() + REFRESH_MS * 3;
    for (let i = 0; Date.now() < until; i++) await echoStream(t, port, `page-bg-${i}`, 1_000_000, 10_000);
  })();
  await page.waitForFunction(
    () => /[1-9]/.test(document.querySelector('table[data-service="postgres"] tr.service td.rate-in')?.textContent ?? ''),
    undefined,
    { timeout: REFRESH_MS * 3, polling: 50 },
  );
  t.match(await page.locator('table[data-service="postgres"] tr.service td.rate-in').textContent(), /^[\d.]+ (B|KiB|MiB|GiB)\/s$/, 'the service row shows a throughput');
  const screenshot = process.env.FULCRUM_STATUS_SCREENSHOT ?? join(mkdtempSync(join(tmpdir(), 'fulcrum-shot-')), 'status.png');
  await page.screenshot({ path: screenshot, fullPage: true });
  t.comment(`screenshot: ${screenshot}`);
  await flowing;

  // Enable brings it back, through the same API.
  await page.locator(`button[data-action="enable"][data-backend="${C}"]`).click();
  await page.waitForFunction((address) => document.querySelector(`tr[data-backend="postgres/${address}"] td.state`)?.textContent === 'up', C, { timeout: 3_000 });
  t.equal(runtime.control.status('postgres', C).effective, 'up');
  t.same(errors, [], 'no script error on the page');
  held.socket.destroy();
  t.equal((await http(base, 'GET', '/api/status', { token: TOKEN })).status, 200);
});

t.test('status page: a declined token prompt is not repeated every refresh; the banner asks again', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed` }, async (t) => {
  const port = (await startServer(t, (socket) => socket.pipe(socket))).port;
  const { base } = await startRuntime(t, yaml([port]));
  const page = await launch(t);
  let prompts = 0;
  page.on('dialog', (dialog) => {
    prompts++;
    void (prompts === 1 ? dialog.dismiss() : prompts === 2 ? dialog.accept('wrong-token-but-long-enough') : dialog.accept(TOKEN));
  });
  await page.goto(`${base}/`);
  await page.locator('#banner button[data-token]').waitFor({ timeout: 5_000 });
  await page.waitForTimeout(REFRESH_MS * 2 + 200);
  t.equal(prompts, 1, 'asked once, not at every refresh');
  t.match(await page.locator('#banner').textContent(), /401 this admin API requires a bearer token/);
  t.equal(await page.locator('tr.backend').count(), 0, 'no data without the token');

  await page.locator('#banner button[data-token]').click();
  // A wrong token: the API says invalid_token, and the page asks again on the next refresh.
  await page.locator(`tr[data-backend="postgres/127.0.0.1:${port}"]`).waitFor({ timeout: REFRESH_MS * 4 });
  t.equal(prompts, 3, 'a wrong token is asked for again');
  t.equal(await page.evaluate(() => localStorage.getItem('fulcrum-admin-token')), TOKEN);
});

t.test('status page in headless Chromium: a udp service shows its flow table and datagrams, exact after 3 flows x 5 datagrams', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed` }, async (t) => {
  const running = await startUdpStatusRuntime(t);
  const { page, errors } = await openPage(t, running.base);
  const table = 'table[data-service="game"]';
  await page.locator(`${table} tr.flows`).waitFor({ timeout: 10_000 });
  const total = FLOWS * DATAGRAMS;
  const cells = async (selector: string): Promise<string[]> => page.locator(selector).evaluate((row) => [...row.children].map((c) => c.textContent ?? ''));
  // Flows, Flows total, Failed, Datagrams in / out, Bytes in / out.
  const counted = (row: string[]): string[] => [9, 12, 13, 16, 17, 18, 19].map((i) => row[i]!);

  t.same(await page.locator(`${table} thead th`).allTextContents(),
    ['Backend', 'State', 'Since', 'Health', 'Admin', 'Check', 'Role', 'Wt', 'Bck', 'Flows', 'Peak / limit', 'Flows/s', 'Flows total', 'Failed', 'Down', 'Downtime', 'Datagrams in', 'Datagrams out', 'Bytes in', 'Bytes out', 'Rate in', 'Rate out', 'Last check', 'Actions'],
    'udp columns say flows and datagrams');
  t.match(await page.locator(`${table} caption`).textContent(), new RegExp(`^game 127\\.0\\.0\\.1:${running.port} · udp · user datapath \\(the listen address or the backends are on the loopback interface .*\\) · maglev · 1/1 backends up$`), 'no TCP queue in a udp caption');
  t.same(counted(await cells(`${table} tr.service`)), ['2', '3', '0', String(total), String(total), `${total * SIZE} B`, `${total * SIZE} B`], 'service row: flows 2 active / 3 created / 0 dropped, 15 datagrams and 960 B each way');
  t.equal(await page.locator(`${table} tr.flows`).textContent(),
    'flow table: 2 active · 3 created · 0 expired · 1 evicted · 0 completed · 0 moved · 0 dropped · datagrams dropped 0', 'the flow table row, every counter');
  t.same(await page.locator(`${table} tr.flows span`).allTextContents(),
    ['2 active', '3 created', '0 expired', '1 evicted', '0 completed', '0 moved', '0 dropped', 'datagrams dropped 0']);
  const backendRow = `${table} tr[data-backend="game/${running.backend.address}"]`;
  t.same(counted(await cells(backendRow)), ['2', '3', '0', String(total), String(total), `${total * SIZE} B`, `${total * SIZE} B`], 'backend row: 2 flows, 3 given to it, 15 datagrams each way');
  t.equal(await page.locator(`${backendRow} td.datagrams-in`).textContent(), String(total));
  const screenshot = process.env.FULCRUM_STATUS_SCREENSHOT_UDP ?? join(mkdtempSync(join(tmpdir(), 'fulcrum-shot-')), 'status-udp.png');
  await page.screenshot({ path: screenshot, fullPage: true });
  t.comment(`screenshot: ${screenshot}`);
  t.same(errors, [], 'no script error on the page');
});

t.test('status page in headless Chromium: a guarded service shows its admission row, exact after a denial and an over-limit connection', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed` }, async (t) => {
  const backend = await startServer(t, (socket) => socket.pipe(socket));
  const openPort = await freePort();
  const { base, port, runtime } = await startRuntime(t, (listen) => [
    `admin: { token: ${TOKEN} }`,
    'services:',
    '  - name: guarded',
    `    listen: 127.0.0.1:${listen}`,
    '    deny: [127.0.0.6]',
    '    client_limits: {max_connections: 1}',
    '    backends:',
    `      - address: 127.0.0.1:${backend.port}`,
    '  - name: open',
    `    listen: 127.0.0.1:${openPort}`,
    '    backends:',
    `      - address: 127.0.0.1:${backend.port}`,
    '',
  ].join('\n'));
  const denied = await openConn(t, port, 5_000, '127.0.0.6');
  await denied.waitEnd();
  const held = await openConn(t, port, 5_000, '127.0.0.7');
  const over = await openConn(t, port, 5_000, '127.0.0.7');
  await over.waitEnd();
  t.ok(held.endedAt === undefined, 'the first connection of 127.0.0.7 stays open');
  const admission = () => runtime.engine.stats().services.find((s) => s.name === 'guarded')!.admission;
  t.same([admission().denied, admission().overConnections], [1, 1], 'the engine counted both');

  const { page, errors } = await openPage(t, base);
  const row = 'table[data-service="guarded"] tr.admission';
  await page.locator(row).waitFor({ timeout: 10_000 });
  t.equal(await page.locator(row).textContent(),
    'admission: 1 denied · 1 over max_connections · 0 over rate · 0 untracked · 0 PROXY headers · 0 missing · 0 malformed · 0 timed out',
    'the admission row, every counter');
  t.equal(await page.locator('table[data-service="open"] tr.admission').count(), 0, 'a service without admission keys has no such row');
  t.same(errors, [], 'no script error on the page');
});

t.test('status page in headless Chromium: a relay: kernel service shows its relay row, exact, and follows a close within one refresh', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed` }, async (t) => {
  const backend = await startServer(t, (socket) => socket.pipe(socket));
  const userPort = await freePort();
  const { base, port, runtime } = await startRuntime(t, (listen) => [
    `admin: { token: ${TOKEN} }`,
    'services:',
    '  - name: inkernel',
    `    listen: 127.0.0.1:${listen}`,
    '    relay: kernel',
    '    backends:',
    `      - address: 127.0.0.1:${backend.port}`,
    '  - name: copied',
    `    listen: 127.0.0.1:${userPort}`,
    '    relay: user',
    '    backends:',
    `      - address: 127.0.0.1:${backend.port}`,
    '',
  ].join('\n'));
  const relay = () => runtime.engine.stats().services.find((s) => s.name === 'inkernel')!.relay!;
  const held = [await openConn(t, port), await openConn(t, port), await openConn(t, port)];
  await waitUntil('3 connections in the kernel relay', () => relay().kernelActive === 3);
  // Bytes cross the kernel relay both ways (an echo), so the row counts real use.
  for (const conn of held) await pingEcho(conn, 'through the kernel\n');
  t.pass('each connection echoes through the kernel relay');

  const { page, errors } = await openPage(t, base);
  const row = 'table[data-service="inkernel"] tr.relay';
  await page.locator(row).waitFor({ timeout: 10_000 });
  const text = (active: number) =>
    `relay kernel: ${active} in the kernel · 3 entered · 0 back to splice · stayed in user space: 0 unavailable · 0 client already closed · 0 maps full · 0 refused`;
  t.equal(await page.locator(row).textContent(), text(3), 'the relay row, every counter');
  t.equal(await page.locator('table[data-service="copied"] tr.relay').count(), 0, 'a relay: user service that never used the kernel relay has no such row');

  held[0]!.socket.destroy();
  await waitUntil('the close to reach the engine', () => relay().kernelActive === 2);
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent?.startsWith('relay kernel: 2 in the kernel'), row, { timeout: REFRESH_MS * 3 });
  t.equal(await page.locator(row).textContent(), text(2), 'one refresh later: 2 in the kernel, still 3 entered');
  t.same(errors, [], 'no script error on the page');
});

t.test('status page: the BGP announcement and session sync lines', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed` }, async (t) => {
  const { port } = await startServer(t, (socket) => socket.pipe(socket));
  const { base, runtime } = await startRuntime(t, yaml([port]));
  const now = Date.now();
  let vip: AnnounceVipStatus = { vip: '10.203.0.100', state: 'announced', reason: 'serving', since: now, services: ['postgres'] };
  runtime.attachAnnounce({
    status: () => ({
      bird: { managed: true, running: true, reachable: true, socket: '/run/fulcrum/bird.ctl', pid: 4242 },
      localAddress: '10.201.0.1',
      localAs: 65001,
      bfd: true,
      vips: [vip],
      neighbors: [{ address: '10.201.0.254', as: 65000, state: 'up', info: 'Established' }],
      counters: { announcements: 1, withdrawals: 0, birdcErrors: 0, birdRestarts: 0 },
    }),
    drain: async () => undefined,
    resume: async () => undefined,
  });
  runtime.attachSync({
    status: () => ({
      listen: '10.201.0.1:7480',
      // From the test's `now`, not the call's: the status takes its own `now` before it asks sync.
      peers: [{ address: '10.201.0.2:7480', messagesAccepted: 3, lastAcceptedAt: now - 2000 }],
      counters: { recordsSent: 12, recordsInstalled: 7 },
      rejected: { truncated: 0, tooLarge: 0, badMagic: 1, badVersion: 0, badLength: 0, badMac: 2, badRecord: 0, stale: 0, replay: 0, notPeer: 0 },
      resync: { state: 'taught', taughtBy: '10.201.0.2:7480', taughtAt: now, taughtAfterMs: 70 },
    }),
  });
  const { page, errors } = await openPage(t, base);
  const line = page.locator('#announce-line');
  await line.waitFor({ timeout: 10_000 });
  t.match(await line.textContent(), /BGP AS65001 · BIRD pid 4242 · BFD · 10\.203\.0\.100 ANNOUNCED · neighbors 10\.201\.0\.254 AS65000 Established/);
  // Heard 2 s before `now`; the page says how long ago when it renders, which a
  // loaded machine (a slow browser start) can make several seconds later.
  const syncLine = (await page.locator('#sync-line').textContent()) ?? '';
  const heardAgo = Number(/\(heard 0m (\d+)s ago\)/.exec(syncLine)?.[1]);
  const latest = 2 + Math.ceil((Date.now() - now) / 1000);
  t.ok(heardAgo >= 2 && heardAgo <= latest, `heard ${heardAgo} s ago: between 2 s and ${latest} s (the time since the test's now)`);
  t.match(syncLine, /session sync 10\.201\.0\.1:7480 → 10\.201\.0\.2:7480 \(heard 0m \d+s ago\) · sent 12 · installed 7 · rejected 3 · taught by 10\.201\.0\.2:7480 in 70 ms$/);
  vip = { ...vip, state: 'withdrawn', reason: 'service postgres: no backend up' };
  await page.waitForFunction(() => document.querySelector('[data-vip="10.203.0.100"]')?.textContent?.includes('WITHDRAWN'), undefined, { timeout: REFRESH_MS + 2000 });
  t.equal(await page.locator('[data-vip="10.203.0.100"]').textContent(), '10.203.0.100 WITHDRAWN (service postgres: no backend up)', 'a withdrawn VIP says why');
  t.same(errors, [], 'no script error on the page');
});

/** Where the laptop-size screenshots are kept: test/artifacts/ (gitignored), printed by the test. */
const ARTIFACTS = join(import.meta.dirname, '..', 'artifacts');

t.test('status page at 1366x768 and 1400 px: every column fits, Actions included; peak, rate, queue, backup, downtime and role shown', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed` }, async (t) => {
  const master = await startRedis(t);
  const replica = await startRedis(t, { replicaOf: master.port });
  const echo: number[] = [];
  for (let i = 0; i < 3; i++) echo.push((await startServer(t, (socket) => socket.pipe(socket))).port);
  const redisListen = await freePort();
  const { base, port, runtime } = await startRuntime(t, (listen) => [
    'workers: 2',
    `admin: { token: ${TOKEN} }`,
    'services:',
    '  - name: postgres',
    `    listen: 127.0.0.1:${listen}`,
    '    backends:',
    `      - address: 127.0.0.1:${echo[0]}`,
    '        max_connections: 50',
    `      - address: 127.0.0.1:${echo[1]}`,
    `      - address: 127.0.0.1:${echo[2]}`,
    '        backup: true',
    '  - name: redis',
    `    listen: 127.0.0.1:${redisListen}`,
    '    balance: leastconn',
    '    health_check: {type: redis, interval: 300ms, timeout: 250ms, rise: 1, fall: 1}',
    '    backends:',
    `      - address: 127.0.0.1:${master.port}`,
    '        max_connections: 100',
    `      - address: 127.0.0.1:${replica.port}`,
    '',
  ].join('\n'));
  // Three connections at once: round robin puts two on the first backend (its peak, against max_connections 50).
  const held = [await openConn(t, port), await openConn(t, port), await openConn(t, port)];
  const postgres = () => runtime.engine.stats().services.find((s) => s.name === 'postgres')!;
  await waitUntil('three connections reach backends', () => postgres().backends.reduce((sum, b) => sum + b.active, 0) === 3);
  for (const conn of held) conn.socket.destroy();
  await waitUntil('they are closed', () => postgres().active === 0);
  const [A, B] = [`127.0.0.1:${echo[0]}`, `127.0.0.1:${echo[1]}`];
  // One down transition of about a second on B.
  runtime.control.setHealth('postgres', B, 'down');
  await new Promise((r) => setTimeout(r, 1_100));
  runtime.control.setHealth('postgres', B, 'up');
  await waitUntil('the redis roles are known', () => runtime.health.snapshot().filter((h) => h.role !== undefined).length === 2, 10_000);
  // Real numbers in the byte and rate cells (wider than 0 B and –): some megabytes, and a stream
  // running while the page is measured.
  await echoStream(t, port, 'wide-1', 3_000_000, 10_000);
  let streaming = true;
  const flowing = (async () => {
    const until = Date.now() + 60_000;
    for (let i = 0; streaming && i < 5_000 && Date.now() < until; i++) await echoStream(t, port, `wide-bg-${i}`, 1_000_000, 10_000);
  })();

  for (const width of [1366, 1400]) {
    const { page, errors } = await openPage(t, base, { width, height: 768 });
    const row = (service: string, address: string) => `table[data-service="${service}"] tr[data-backend="${service}/${address}"]`;
    await page.locator(row('redis', `127.0.0.1:${replica.port}`)).waitFor({ timeout: 10_000 });
    await page.waitForFunction(() => /MiB\/s/.test(document.querySelector('table[data-service="postgres"] tr.service td.rate-in')?.textContent ?? ''), undefined, { timeout: REFRESH_MS * 4, polling: 50 });
    // Scroll widths: the document, and each table against the body it sits in.
    const fit = await page.evaluate(() => ({
      page: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
      tables: [...document.querySelectorAll('table')].map((table) => [table.scrollWidth, table.parentElement!.clientWidth]),
      lastButton: Math.max(...[...document.querySelectorAll('button[data-action="enable"]')].map((b) => b.getBoundingClientRect().right)),
    }));
    t.ok(fit.page[0]! <= fit.page[1]!, `${width} px: no horizontal scroll (scrollWidth ${fit.page[0]} <= clientWidth ${fit.page[1]})`);
    t.ok(fit.tables.every(([scroll, client]) => scroll! <= client!), `${width} px: each table fits its container (${JSON.stringify(fit.tables)})`);
    t.ok(fit.lastButton <= width, `${width} px: the Actions buttons are on screen (right edge ${Math.round(fit.lastButton)})`);
    if (width !== 1366) continue;

    const headers = await page.locator('table[data-service="postgres"] thead th').allTextContents();
    t.same(headers, ['Backend', 'State', 'Since', 'Health', 'Admin', 'Check', 'Role', 'Wt', 'Bck', 'Active', 'Peak / limit', 'Conn/s', 'Total', 'Failed', 'Queue', 'Down', 'Downtime', 'Bytes in', 'Bytes out', 'Rate in', 'Rate out', 'Last check', 'Actions']);
    const text = (selector: string) => page.locator(selector).textContent();
    const api = runtime.engine.stats().services.find((s) => s.name === 'postgres')!;
    const peakA = api.backends.find((b) => b.address === A)!.peak;
    t.equal(peakA, 2, 'the engine kept a peak of 2 connections on the first backend');
    const peakB = api.backends.find((b) => b.address === B)!.peak;
    t.equal(await text(`${row('postgres', A)} td.peak`), `${peakA} / 50`, 'peak against max_connections');
    t.equal(await text(`${row('postgres', B)} td.peak`), `${peakB} / –`, 'no limit');
    t.equal(await text(`${row('postgres', `127.0.0.1:${echo[2]}`)} td.backup`), 'Y', 'the backup flag');
    t.equal(await text(`${row('postgres', A)} td.backup`), '');
    t.equal(await text(`${row('postgres', B)} td.down-transitions`), '1', 'one down transition');
    t.match(await text(`${row('postgres', B)} td.downtime`), /^0m [12]s$/, 'about a second down');
    t.match(await text('#actions-help'), /^Drain: no new connections, open ones continue until they end · Maint: /, 'what each button does, in words on the page');
    t.equal(await text(`${row('postgres', A)} td.down-transitions`), '0');
    t.equal(await text('table[data-service="postgres"] tr.service td.queue'), '0 / 0 / 0', 'the queue is the service\'s: waiting / waited / refused');
    t.match(await text('table[data-service="postgres"] tr.service td.session-rate'), /^[1-9]\d*$/, 'a session rate on the service row, while streams open');
    for (const [address, role] of [[`127.0.0.1:${master.port}`, 'primary'], [`127.0.0.1:${replica.port}`, 'replica']] as const) {
      t.equal(await text(`${row('redis', address)} td.check`), 'redis', 'Check: the check type only');
      t.equal(await text(`${row('redis', address)} td.role`), role, `Role: ${role}, apart`);
    }
    t.equal(await text(`${row('postgres', A)} td.role`), '–', 'no check, no role');
    t.match(await text('table[data-service="postgres"] tr.ended'), /^ended: \d+ client_closed/, 'how the connections ended (connection log)');
    t.equal(await page.locator('table[data-service="postgres"] tr.ended span[data-termination="client_closed"]').getAttribute('title'), 'the client sent its FIN first (a normal end)');
    t.equal(await text('table[data-service="redis"] tr.ended'), 'ended: none yet');
    t.match(await page.locator(`button[data-action="drain"][data-backend="${A}"]`).getAttribute('title'), /^Drain: no new connections .*open ones continue until they end/);
    t.match(await page.locator(`button[data-action="maint"][data-backend="${A}"]`).getAttribute('title'), /^Maintenance: no new connections, sticky clients included; open ones continue/);
    mkdirSync(ARTIFACTS, { recursive: true });
    const screenshot = join(ARTIFACTS, 'status-page-1366.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    t.comment(`screenshot: ${screenshot}`);
    t.same(errors, [], 'no script error on the page');
  }
  streaming = false;
  await flowing;
});
