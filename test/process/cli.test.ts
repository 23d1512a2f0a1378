// The CLI surface, run as a real process: version, help, usage errors,
// `check`, and the demo's clear failure when a backend port is busy.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import t, { type Test } from 'tap';
import { freePort, startServer } from '../helpers/backends.js';
import { ROOT, runCli, serviceYaml, startCli, writeConfig } from '../helpers/cli.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

t.test('--version and -v print the package version', async (t) => {
  for (const flag of ['--version', '-v']) {
    const r = await runCli(t, [flag]);
    t.equal(r.code, 0, `${flag} exits 0`);
    t.equal(r.stdout, `${pkg.version}\n`);
  }
});

t.test('--help prints the overall usage; <command> --help the command usage', async (t) => {
  const main = await runCli(t, ['--help']);
  t.equal(main.code, 0);
  t.match(main.stdout, /^Usage: fulcrum <command>/);
  for (const command of ['run', 'check', 'demo']) t.match(main.stdout, new RegExp(`\\n  ${command} `));

  for (const command of ['run', 'check', 'demo']) {
    const r = await runCli(t, [command, '-h']);
    t.equal(r.code, 0, `${command} -h exits 0`);
    t.match(r.stdout, new RegExp(`^Usage: fulcrum ${command} `));
    t.equal(r.stderr, '');
  }
});

t.test('usage errors exit 2 with the usage on stderr', async (t) => {
  const none = await runCli(t, []);
  t.equal(none.code, 2, 'no command');
  t.match(none.stderr, /missing command[\s\S]*Usage: fulcrum <command>/);

  const unknown = await runCli(t, ['frobnicate']);
  t.equal(unknown.code, 2, 'unknown command');
  t.match(unknown.stderr, /unknown command 'frobnicate'/);
  t.equal(unknown.stdout, '');

  const flag = await runCli(t, ['check', '--frob']);
  t.equal(flag.code, 2, 'unknown flag');
  t.match(flag.stderr, /Unknown option '--frob'[\s\S]*Usage: fulcrum check/);

  const missing = await runCli(t, ['run']);
  t.equal(missing.code, 2, 'run without -c');
  t.match(missing.stderr, /missing required option -c FILE/);

  const level = await runCli(t, ['run', '-c', 'x.yaml', '--log-level', 'loud']);
  t.equal(level.code, 2, 'bad --log-level');
  t.match(level.stderr, /--log-level: expected one of fatal\|error\|warn\|info\|debug\|trace, got 'loud'/);
});

t.test('check reports what would fail at run time: a missing password_file, an unset password_env, a duration without a unit', async (t) => {
  delete process.env.FULCRUM_TEST_CHECK_UNSET;
  const yaml = (idle: string): string =>
    [
      'services:',
      '  - name: db',
      '    listen: 127.0.0.1:7000',
      '    health_check: { type: postgres, user: fulcrum, password_file: secrets/pg.password }',
      `    timeouts: { idle: ${idle} }`,
      '    backends:',
      '      - address: 127.0.0.1:7001',
      '      - address: 127.0.0.1:7002',
      '        health_check: { password_env: FULCRUM_TEST_CHECK_UNSET }',
      '',
    ].join('\n');
  const file = writeConfig(t, yaml('1h'));
  const missing = join(dirname(file), 'secrets/pg.password');
  const r = await runCli(t, ['check', '-c', file]);
  t.equal(r.code, 2, 'check fails');
  t.equal(r.stdout, '');
  t.equal(
    r.stderr,
    `${file}:4:67: password: cannot read ${missing} (ENOENT): the check would fail at run time\n` +
      `${file}:9:39: password: environment variable FULCRUM_TEST_CHECK_UNSET is not set: the check would fail at run time (set it where Fulcrum runs)\n`,
  );

  // Both sources readable: OK.
  mkdirSync(dirname(missing));
  writeFileSync(missing, 'secret\n');
  const set = await runCliEnv(t, ['check', '-c', file], { FULCRUM_TEST_CHECK_UNSET: 'pw' });
  t.equal(set.code, 0, set.stderr);
  t.equal(set.stdout.split('\n')[0], `${file}: OK (1 service)`);

  // A bare number where a duration goes: refused, with how to write it.
  writeFileSync(file, yaml('3600'));
  const bare = await runCliEnv(t, ['check', '-c', file], { FULCRUM_TEST_CHECK_UNSET: 'pw' });
  t.equal(bare.code, 2);
  t.equal(bare.stderr, `${file}:5:23: bad duration 3600 for timeouts.idle: a duration needs a unit: write 3600s for seconds or 3600ms for milliseconds (expected a number and a unit (ms, s, m, h, d) such as 500ms, 1.5s or 10m)\n`);
});

/** runCli with extra environment variables for the child. */
async function runCliEnv(t: Test, args: readonly string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await runCli(t, args);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

t.test('check accepts a valid config', async (t) => {
  const file = writeConfig(t, serviceYaml({ listenPort: 7000, backendPorts: [7001, 7002] }));
  const r = await runCli(t, ['check', '-c', file]);
  t.equal(r.code, 0, r.stderr);
  // Then the relay each TCP service will use on this machine (README, Kernel relay).
  t.equal(r.stdout, `${file}: OK (1 service)\n  echo (tcp 127.0.0.1:7000): relay auto: kernel for request/response, user space for one-shot and bulk\n`);
  t.equal(r.stderr, '');
});

t.test('check accepts the bundled default config', async (t) => {
  const r = await runCli(t, ['check', '-c', 'config/fulcrum.yaml']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^config\/fulcrum\.yaml: OK \(\d+ services?\)\n(  \S+ \((tcp|udp) \S+\): (relay|datapath) .*\n)*$/);
});

t.test('check rejects an invalid config with file:line:column and exit 2', async (t) => {
  // The bad value sits on line 2 of the file.
  const text = serviceYaml({ listenPort: 7000, backendPorts: [7001] }).replace(/^drain_timeout: .*$/m, 'drain_timeout: soon');
  const file = writeConfig(t, text);
  const r = await runCli(t, ['check', '-c', file]);
  t.equal(r.code, 2);
  t.equal(r.stdout, '');
  t.match(r.stderr, new RegExp(`^${escape(file)}:2:\\d+: .+`, 'm'));
});

t.test('check on a missing file exits 2 and names the file', async (t) => {
  const r = await runCli(t, ['check', '-c', `${ROOT}/no/such/fulcrum.yaml`]);
  t.equal(r.code, 2);
  t.match(r.stderr, /no\/such\/fulcrum\.yaml/);
});

t.test('demo exits 1 and names the address when a demo backend port is busy', async (t) => {
  const { port } = await startServer(t, (socket) => socket.end());
  const file = writeConfig(t, serviceYaml({ listenPort: 7000, backendPorts: [port] }));
  const r = await runCli(t, ['demo', '-c', file]);
  t.equal(r.code, 1);
  t.match(r.stderr, new RegExp(`demo backend 127\\.0\\.0\\.1:${port} cannot listen: the port is busy \\(EADDRINUSE\\)`));
});

t.test('status and reload -c FILE: a file that does not say where the API is is an error (exit 2), never the default address', async (t) => {
  const syntax = writeConfig(t, 'admin:\n  listen: 127.0.0.1:18406\nservices: [\n  - name: a\n', 'broken.yaml');
  const notMapping = writeConfig(t, 'admin: 127.0.0.1:18406\nservices: []\n', 'scalar.yaml');
  const alias = writeConfig(t, 'admin:\n  listen: *:18406\n', 'alias.yaml');
  const cases: Array<[string, RegExp]> = [
    [syntax, new RegExp(`^${escape(syntax)}:\\d+:\\d+: YAML syntax error: .* \\(cannot find the admin address in this file\\)\n`)],
    [notMapping, new RegExp(`^${escape(notMapping)}:1:8: admin must be a mapping \\(listen, token, token_file\\) \\(cannot find the admin address in this file\\)\n$`)],
    [alias, new RegExp(`^${escape(alias)}:2:11: unknown alias`)],
    [`${ROOT}no/such/db.yaml`, new RegExp(`^${escape(ROOT)}no/such/db\\.yaml: cannot read the config \\(ENOENT\\) to find the admin address\n$`)],
  ];
  for (const [file, message] of cases) {
    for (const command of ['status', 'reload']) {
      const r = await runCli(t, [command, '-c', file]);
      t.equal(r.code, 2, `${command} -c ${file}: exit 2`);
      t.match(r.stderr, message, `${command}: says which file and where`);
      t.notMatch(r.stderr, /cannot reach the admin API/, `${command}: no address was tried`);
      t.equal(r.stdout, '');
    }
  }
});

/** `fulcrum demo` on free ports with its admin API on `adminPort`, until its guide is printed. */
async function demoGuide(t: Test, adminPort: number): Promise<string> {
  const [listen, backend] = [await freePort(), await freePort()];
  const file = writeConfig(t, `${serviceYaml({ listenPort: listen, backendPorts: [backend], workers: 1 })}admin: { listen: 127.0.0.1:${adminPort} }\n`);
  const proc = startCli(t, ['demo', '-c', file]);
  await proc.waitFor('the guide', () => (proc.stdout.includes('Press Ctrl-C') ? true : undefined));
  proc.signal('SIGTERM');
  await proc.waitForExit();
  return proc.stdout;
}

t.test('the demo advertises its status page only when the admin API listens', async (t) => {
  const adminPort = await freePort();
  const guide = await demoGuide(t, adminPort);
  t.match(guide, `Status page: http://127.0.0.1:${adminPort}/`);

  const { port: busy } = await startServer(t, (socket) => socket.end());
  const without = await demoGuide(t, busy);
  t.notMatch(without, 'Status page: http', 'no address that shows another program');
  t.match(without, `No status page: the admin API could not listen on 127.0.0.1:${busy}`);
  t.match(without, /"level":"error".*admin API not started: cannot listen on 127\.0\.0\.1:\d+/, 'the error is logged');
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
