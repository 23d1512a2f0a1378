// Hot reload of a real `fulcrum run` process: 50 reloads (API, SIGHUP and the
// `fulcrum reload` command) while bounded clients keep connecting, echoing
// random bytes and checking them byte for byte: no connection may fail. Then
// an invalid config: the running one stays, `fulcrum reload` exits 2 with the
// reason, the log says why. And `fulcrum status` reading the same process.
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import t, { type Test } from 'tap';
import { type Backend, freePort, startBackends } from '../helpers/backends.js';
import { type CliProcess, runCli, startCli, writeConfig } from '../helpers/cli.js';
import { http } from '../helpers/admin.js';
import { HOST, delay, openConn, waitUntil } from '../helpers/traffic.js';
import { writeFileSync } from 'node:fs';

interface Variant {
  backends: number[];
  balance: string;
  weights?: number[];
  /** A second service on this port, present in some variants (its listener comes and goes). */
  extraPort?: number;
}

function configText(adminPort: number, listenPort: number, backends: readonly Backend[], v: Variant): string {
  const lines = [
    'workers: 2',
    'drain_timeout: 60s',
    'log: { level: info }',
    `admin: { listen: 127.0.0.1:${adminPort} }`,
    'services:',
    '  - name: echo',
    `    listen: 127.0.0.1:${listenPort}`,
    `    balance: ${v.balance}`,
    '    backends:',
    ...v.backends.map((i, j) => `      - { address: ${backends[i]!.address}, weight: ${v.weights?.[j] ?? 1} }`),
  ];
  if (v.extraPort !== undefined) {
    lines.push('  - name: extra', `    listen: 127.0.0.1:${v.extraPort}`, '    backends:', `      - address: ${backends[0]!.address}`);
  }
  return `${lines.join('\n')}\n`;
}

interface Running {
  proc: CliProcess;
  file: string;
  port: number;
  adminPort: number;
  base: string;
  write(v: Variant): void;
}

/** `fulcrum run` with its admin API on a free port; retried when a port was taken meanwhile. */
async function startRunning(t: Test, backends: readonly Backend[], first: Variant): Promise<Running> {
  for (let attempt = 1; ; attempt++) {
    const [port, adminPort] = [await freePort(), await freePort()];
    const file = writeConfig(t, configText(adminPort, port, backends, first));
    const proc = startCli(t, ['run', '-c', file]);
    try {
      await proc.waitForLog('listening');
    } catch (err) {
      await proc.kill();
      if (attempt < 5 && proc.stderr.includes('EADDRINUSE')) continue;
      throw err;
    }
    if (!proc.hasLog('admin API listening')) {
      await proc.kill();
      if (attempt < 5) continue;
      throw new Error(`the admin API did not start: ${proc.stdout}`);
    }
    return { proc, file, port, adminPort, base: `http://127.0.0.1:${adminPort}`, write: (v) => writeFileSync(file, configText(adminPort, port, backends, v)) };
  }
}

/** One client: connect, send `size` random bytes, read them back, compare, close. Resolves an error text or undefined. */
function echoOnce(port: number, size: number): Promise<string | undefined> {
  const payload = randomBytes(size);
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port });
    const chunks: Buffer[] = [];
    let received = 0;
    const timer = setTimeout(() => finish(`timed out after ${received} of ${size} bytes`), 10_000);
    const finish = (error?: string): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(error);
    };
    socket.on('connect', () => socket.end(payload));
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
    });
    socket.on('end', () => {
      const back = Buffer.concat(chunks);
      finish(back.equals(payload) ? undefined : `got ${back.length} bytes back, ${back.length === size ? 'different' : 'expected ' + size}`);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish(`socket error ${err.code ?? err.message} after ${received} bytes`));
  });
}

/** `lanes` clients in a loop until stop() (bounded: at most `max` connections in all). */
function traffic(port: number, lanes: number, max: number): { stop: () => Promise<void>; done: number; failures: string[] } {
  const state = { done: 0, failures: [] as string[], stopped: false };
  const lane = async (): Promise<void> => {
    while (!state.stopped && state.done < max) {
      const size = 1 + Math.floor(Math.random() * 64 * 1024);
      const error = await echoOnce(port, size);
      state.done++;
      if (error) state.failures.push(error);
    }
  };
  const running = Promise.all(Array.from({ length: lanes }, lane));
  return {
    stop: async () => {
      state.stopped = true;
      await running;
    },
    get done() {
      return state.done;
    },
    get failures() {
      return state.failures;
    },
  };
}

t.test('50 reloads while traffic flows: zero failed connections, byte-exact', async (t) => {
  const backends = await startBackends(t, 3, 'echo');
  const extraPort = await freePort();
  const variants: Variant[] = [
    { backends: [0, 1], balance: 'roundrobin' },
    { backends: [0, 1, 2], balance: 'roundrobin', extraPort },
    { backends: [1, 2], balance: 'leastconn' },
    { backends: [2, 0], balance: 'weighted', weights: [3, 1], extraPort },
    { backends: [0, 1, 2], balance: 'maglev', weights: [1, 2, 1] },
  ];
  const running = await startRunning(t, backends, variants[0]!);
  const { proc, port, base, file } = running;
  // A long-lived connection made before the reloads must live through all of them.
  const longLived = await openConn(t, port);
  const probe = randomBytes(4096);
  await longLived.write(probe);
  t.ok((await longLived.read(probe.length)).equals(probe), 'long-lived connection echoes before');

  const load = traffic(port, 8, 200_000);
  await waitUntil('traffic flowing', () => load.done >= 20, 10_000);
  const triggers = { api: 0, signal: 0, cli: 0 };
  for (let i = 1; i <= 50; i++) {
    running.write(variants[i % variants.length]!);
    if (i % 10 === 0) {
      const res = await runCli(t, ['reload', '-c', file]);
      t.equal(res.code, 0, `reload ${i} (fulcrum reload): exit 0 ${res.stderr}`);
      triggers.cli++;
    } else if (i % 5 === 0) {
      const before = proc.logs.filter((l) => l.msg?.startsWith('reloaded:')).length;
      proc.signal('SIGHUP');
      await proc.waitFor(`reload ${i} by SIGHUP`, () => (proc.logs.filter((l) => l.msg?.startsWith('reloaded:')).length > before ? true : undefined), 10_000);
      triggers.signal++;
    } else {
      const res = await http(base, 'POST', '/api/reload');
      if (res.status !== 200) t.fail(`reload ${i} (API): ${res.status} ${res.text}`);
      triggers.api++;
    }
    await delay(20); // let some connections run on each generation
  }
  const status = await http(base, 'GET', '/api/status');
  t.equal(status.json.generation, 51, '50 reloads applied');
  await delay(200);
  await load.stop();

  t.same(load.failures, [], 'no client failed');
  t.ok(load.done >= 100, `${load.done} connections echoed byte-exact across the reloads`);
  t.same(triggers, { api: 40, signal: 5, cli: 5 });
  const echo = status.json.services.find((s: { name: string }) => s.name === 'echo');
  t.equal(echo.failed, 0, 'the service counted no failed connection');
  t.equal(proc.logs.filter((l) => l.msg === 'reload rejected: the running config stays').length, 0);
  await longLived.write(probe);
  t.ok((await longLived.read(probe.length)).equals(probe), 'the long-lived connection still echoes after 50 reloads');
  t.equal(longLived.describe(), 'open');
  t.comment(`${load.done} connections during 50 reloads`);
});

t.test('an invalid config leaves the running one: log, API answer and `fulcrum reload` exit status say why', async (t) => {
  const backends = await startBackends(t, 2, 'echo');
  const running = await startRunning(t, backends, { backends: [0], balance: 'roundrobin' });
  const { proc, port, file, base, adminPort } = running;
  t.equal(await echoOnce(port, 10_000), undefined, 'serves before');

  writeFileSync(file, `admin: { listen: 127.0.0.1:${adminPort} }\nservices:\n  - name: echo\n    listen: 127.0.0.1:${port}\n    balance: fastest\n    backends:\n      - address: ${backends[1]!.address}\n        weight: 1000\n`);
  const res = await runCli(t, ['reload', '-c', file]);
  t.equal(res.code, 2, '`fulcrum reload` exits 2');
  t.match(res.stderr, /^fulcrum: reload rejected, the running config stays:\n/);
  t.match(res.stderr, new RegExp(`${file}:5:14: unknown balance "fastest"`));
  t.match(res.stderr, new RegExp(`${file}:8:17: weight: expected an integer from 0 to 256, got 1000`));
  const logged = await proc.waitForLog('reload rejected');
  t.match(logged, { trigger: 'api', level: 'error' });
  t.match((logged.errors as string[]).join('\n'), /unknown balance "fastest"/);

  // Through the admin address alone (no -c), same answer.
  const byAddress = await runCli(t, ['reload', '--admin', `127.0.0.1:${adminPort}`]);
  t.equal(byAddress.code, 2);
  t.match(byAddress.stderr, /unknown balance "fastest"/);

  // SIGHUP: logged, nothing else.
  const rejectedBefore = proc.logs.filter((l) => l.msg?.startsWith('reload rejected')).length;
  proc.signal('SIGHUP');
  await proc.waitFor('the SIGHUP rejection', () => (proc.logs.filter((l) => l.msg?.startsWith('reload rejected')).length > rejectedBefore ? true : undefined));
  t.match(proc.logs.filter((l) => l.msg?.startsWith('reload rejected')).at(-1), { trigger: 'signal' });

  const status = await http(base, 'GET', '/api/status');
  t.equal(status.json.generation, 1, 'still the first config');
  t.same(status.json.services[0].backends.map((b: { address: string }) => b.address), [backends[0]!.address]);
  t.equal(await echoOnce(port, 10_000), undefined, 'still serves, byte-exact');
  t.notOk(proc.exit, 'still running');

  // A listener that cannot bind is a rejection too, and changes nothing.
  const busy = await openBusyPort(t);
  writeFileSync(file, configText(adminPort, port, backends, { backends: [0], balance: 'roundrobin', extraPort: busy }));
  const bind = await runCli(t, ['reload', '-c', file]);
  t.equal(bind.code, 2);
  t.match(bind.stderr, new RegExp(`cannot listen on 127.0.0.1:${busy} \\(service extra\\): address already in use \\(EADDRINUSE\\)`));
  t.equal((await http(base, 'GET', '/api/status')).json.generation, 1);

  // Unreachable API: exit 1 with the reason.
  const dead = await runCli(t, ['reload', '--admin', `127.0.0.1:${await freePort()}`]);
  t.equal(dead.code, 1);
  t.match(dead.stderr, /^fulcrum: cannot reach the admin API at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
  // -c naming a file this Fulcrum does not run: refused, not sent to the wrong process.
  const other = writeConfig(t, configText(adminPort, port, backends, { backends: [0], balance: 'roundrobin' }), 'other.yaml');
  const wrong = await runCli(t, ['reload', '-c', other]);
  t.equal(wrong.code, 1);
  t.match(wrong.stderr, /runs .*fulcrum\.yaml, not .*other\.yaml/);
});

/** A port on 127.0.0.1 held by a listening socket of this test. */
async function openBusyPort(t: Test): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as { port: number }).port;
}

t.test('SIGHUP reloads a running `fulcrum run`: a new service listens, a removed one closes', async (t) => {
  const backends = await startBackends(t, 2, 'echo');
  const extraPort = await freePort();
  const running = await startRunning(t, backends, { backends: [0], balance: 'roundrobin' });
  const { proc, port } = running;
  const before = await openConn(t, port);

  running.write({ backends: [0, 1], balance: 'leastconn', extraPort });
  proc.signal('SIGHUP');
  const reloaded = await proc.waitForLog('reloaded');
  t.match(reloaded, { trigger: 'signal', ok: true, generation: 2 });
  t.same(reloaded.added, ['echo/' + backends[1]!.address, 'extra', 'extra/' + backends[0]!.address]);
  t.same(reloaded.changed, ['echo']);
  t.same(reloaded.details, { echo: ['balance', 'backends (+1 -0)'] }, 'what changed in echo, by key');
  t.equal(reloaded.msg, 'reloaded: added extra; changed echo: balance, backends (+1 -0)');
  // A backend a reload adds is down until its checks decide: that is no warning.
  t.same(proc.logs.filter((l) => l.level === 'warn').map((l) => l.msg), [], 'nothing at warn level');
  t.equal(await echoOnce(extraPort, 20_000), undefined, 'the new service answers');
  t.equal(await echoOnce(port, 20_000), undefined, 'the old one still does');
  await before.write('still here\n');
  t.equal((await before.read(11)).toString(), 'still here\n', 'a connection from before the reload goes on');

  running.write({ backends: [1], balance: 'leastconn' });
  proc.signal('SIGHUP');
  await proc.waitFor('the second reload', () => proc.logs.find((l) => l.msg?.startsWith('reloaded:') && l.generation === 3));
  await waitUntil('the removed listener closed', () => true);
  const refused = await new Promise<string>((resolve) => {
    const s = connect({ host: HOST, port: extraPort });
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  t.equal(refused, 'ECONNREFUSED', 'the removed service no longer listens');

  proc.signal('SIGTERM');
  before.socket.end();
  t.same(await proc.waitForExit(15_000), { code: 0, signal: null }, 'stops cleanly after reloads');
});

t.test('a reload that adds backends without a health check never logs them down', async (t) => {
  const backends = await startBackends(t, 2, 'echo');
  const extraPort = await freePort();
  const running = await startRunning(t, backends, { backends: [0], balance: 'roundrobin' });
  const { proc } = running;
  // Adds echo/<b1> and the service extra with its backend, none of them checked.
  running.write({ backends: [0, 1], balance: 'roundrobin', extraPort });
  proc.signal('SIGHUP');
  await proc.waitForLog('reloaded');
  const transitions = proc.logs.filter((l) => typeof l.msg === 'string' && /^backend (down|up|drain|maint)$/.test(l.msg));
  t.same(transitions.map((l) => `${String(l.service)}/${String(l.backend)} ${String(l.msg)}`), [], 'no backend changed state');
  t.equal(await echoOnce(extraPort, 1000), undefined, 'the added service serves at once');
});

t.test('`fulcrum status` prints the table, and --json the API document', async (t) => {
  const backends = await startBackends(t, 2, 'echo');
  const running = await startRunning(t, backends, { backends: [0, 1], balance: 'roundrobin' });
  t.equal(await echoOnce(running.port, 1000), undefined);
  await http(running.base, 'POST', `/api/services/echo/backends/${backends[1]!.address}/drain`);
  const table = await runCli(t, ['status', '-c', running.file]);
  t.equal(table.code, 0, table.stderr);
  const lines = table.stdout.split('\n');
  t.match(lines[0], /^fulcrum \S+, pid \d+, up \d+m \d+s, 2 workers$/);
  t.match(lines[1], new RegExp(`^config ${running.file} \\(generation 1\\)$`));
  t.match(lines[3], /^SERVICE\s+BACKEND\s+STATE\s+SINCE\s+HEALTH\s+ADMIN\s+WEIGHT\s+ACTIVE\s+PEAK\s+CONN\/S\s+TOTAL\s+FAILED\s+IN\s+OUT\s+LAST CHECK$/);
  t.match(lines[4], new RegExp(`^echo\\s+127\\.0\\.0\\.1:${running.port} roundrobin\\s+1/2 up\\s+0\\s+\\d+\\s+1\\s+0\\s+1000 B\\s+1000 B$`));
  t.match(lines[5], /^\s+queue: 0 waiting now, 0 waited, 0 refused \(0 after the queue timeout\)$/);
  t.match(lines[6], /^\s+ended: 1 client_closed$/);
  t.match(table.stdout, new RegExp(`\\n\\s+${backends[0]!.address.replace(/\./g, '\\.')}\\s+up\\s+\\d+m \\d+s\\s+up\\s+enabled\\s+1\\s+0\\s+1/-\\s+\\d+\\s+1\\s+0\\s+1000 B\\s+1000 B\\s+-\\n`));
  t.match(table.stdout, new RegExp(`\\n\\s+${backends[1]!.address.replace(/\./g, '\\.')}\\s+drain\\s+\\d+m \\d+s\\s+up\\s+drain\\s+1\\s+0\\s+0/-\\s+\\d+\\s+0\\s+0\\s+0 B\\s+0 B\\s+-\\n`));

  const json = await runCli(t, ['status', '--admin', `127.0.0.1:${running.adminPort}`, '--json']);
  t.equal(json.code, 0);
  const doc = JSON.parse(json.stdout);
  t.equal(doc.services[0].backends[1].state, 'drain');
  t.equal(doc.config, running.file);

  const dead = await runCli(t, ['status', '--admin', `127.0.0.1:${await freePort()}`]);
  t.equal(dead.code, 1);
  t.match(dead.stderr, /cannot reach the admin API/);
});

t.test('a token from token_file: `fulcrum status` and `fulcrum reload` send it, and fail clearly without it', async (t) => {
  const backends = await startBackends(t, 1, 'echo');
  for (let attempt = 1; ; attempt++) {
    const [port, adminPort] = [await freePort(), await freePort()];
    const token = 'file-token-0123456789-abcdefghij';
    const file = writeConfig(t, configText(adminPort, port, backends, { backends: [0], balance: 'roundrobin' }).replace(`admin: { listen: 127.0.0.1:${adminPort} }`, `admin: { listen: 127.0.0.1:${adminPort}, token_file: admin.token }`));
    writeFileSync(file.replace(/fulcrum\.yaml$/, 'admin.token'), `${token}\n`);
    const proc = startCli(t, ['run', '-c', file]);
    await proc.waitForLog('listening');
    if (!proc.hasLog('admin API listening')) {
      await proc.kill();
      if (attempt < 5) continue;
      throw new Error('admin API did not start');
    }
    t.notMatch(proc.stdout, new RegExp(token), 'the token is never logged');
    const withFile = await runCli(t, ['status', '-c', file]);
    t.equal(withFile.code, 0, `status -c reads the token file ${withFile.stderr}`);
    const reload = await runCli(t, ['reload', '-c', file]);
    t.equal(reload.code, 0, 'reload -c too');
    t.match(reload.stdout, /^reloaded: generation 2; nothing changed\n$/);
    const without = await runCli(t, ['status', '--admin', `127.0.0.1:${adminPort}`]);
    t.equal(without.code, 1, 'no token: exit 1');
    t.match(without.stderr, /this admin API requires a bearer token: Authorization: Bearer TOKEN \(HTTP 401\)/);
    const wrongFile = writeConfig(t, 'not-the-token-but-long-enough\n', 'wrong.token');
    const wrong = await runCli(t, ['reload', '--admin', `127.0.0.1:${adminPort}`, '--token-file', wrongFile]);
    t.equal(wrong.code, 1, 'wrong token: exit 1');
    t.match(wrong.stderr, /^fulcrum: reload failed: the bearer token is not the configured admin token \(HTTP 401\)/);
    const byEnv = await new Promise<number | null>((resolve) => {
      void import('node:child_process').then(({ spawn }) => {
        const child = spawn(process.execPath, ['dist/cli.js', 'status', '--admin', `127.0.0.1:${adminPort}`, '--json'], { env: { ...process.env, FULCRUM_ADMIN_TOKEN: token }, stdio: 'ignore' });
        child.on('close', resolve);
      });
    });
    t.equal(byEnv, 0, 'FULCRUM_ADMIN_TOKEN works too');
    t.notMatch(proc.stdout, new RegExp(token), 'still never logged');
    break;
  }
});
