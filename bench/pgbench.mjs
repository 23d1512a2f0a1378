#!/usr/bin/env node
// PostgreSQL through the proxies: pgbench's select-only script (-S) against
// a real PostgreSQL server (Debian's, started in a temp dir as the postgres
// user), straight (direct), through the floor proxy, Fulcrum, HAProxy
// (`mode tcp`) and nginx (stream), 2 threads or worker processes each. Two
// loads: persistent connections (-S) and a new connection per transaction
// (-S -C, PostgreSQL's expensive path: a backend process per connection).
// Interleaved round by round with the order rotated; each load also runs
// proxy-bound (each proxy held to --proxy-cpu % of one core).
//
//   node bench/pgbench.mjs [--duration 5] [--rounds 3] [--clients 16] [--proxy-cpu 50]
//        [--targets direct,floor,fulcrum,haproxy,nginx] [--baseline DIR] [--quick] [--write]

import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RUN_OPTIONS, intArg, runArgs, targetsArg } from './lib/args.mjs';
import { endRun, openProxyBudget, proxyBoundNote, proxyCpuText, runInterleaved, withProxyBound } from './lib/interleaved.mjs';
import { otherWorkNote } from './lib/cpu.mjs';
import { installCleanup, onInterrupt, runCommandWithCpu, startProcess } from './lib/proc.mjs';
import { freePorts, waitForListen } from './lib/net.mjs';
import { summarize, ratio, fixed, median } from './lib/stats.mjs';
import { markdownTable } from './lib/table.mjs';
import { writeRunSection, RESULTS_FILE } from './lib/results.mjs';
import { machineInfo, commandLine } from './lib/machine.mjs';
import { PATHS, PATH_OPTIONS, pathsArg, pathVersions, startPaths } from './lib/targets.mjs';

const SECTION = 'pgbench';
const PROXY_THREADS = 2;
// pgbench -i scale: 100,000 accounts, which fit in shared_buffers (the
// benchmark measures the path, not the disk).
const SCALE = 1;
const LOADS = [
  { key: 'select', label: 'pgbench -S', args: ['-S'] },
  { key: 'select-connect', label: 'pgbench -S -C', args: ['-S', '-C'] },
];

const log = (line = '') => process.stdout.write(`${line}\n`);
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

function options() {
  const { values } = parseArgs({
    options: {
      ...RUN_OPTIONS,
      clients: { type: 'string', default: '16' },
      ...PATH_OPTIONS,
    },
    strict: true,
  });
  return {
    ...runArgs(values, { duration: 5, rounds: 3, proxyThreads: PROXY_THREADS }),
    clients: intArg('clients', values.clients, 1, 90),
    ...pathsArg(values, targetsArg),
  };
}

/** A PostgreSQL binary of the newest installed major version. */
function pgBin(name) {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (existsSync(`${root}/${v}/bin/${name}`)) return `${root}/${v}/bin/${name}`;
  throw new Error(`no ${name} under ${root}/*/bin (apt-get install postgresql)`);
}

/** The postgres user's uid and gid (PostgreSQL refuses to run as root). */
function postgresUser() {
  const id = (flag) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

const asPostgres = (bin, args) => execFileSync('runuser', ['-u', 'postgres', '--', bin, ...args], { encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'pipe'] });

/** initdb + postgres on 127.0.0.1:`port` with its data and socket in `dir`; resolves the handle. */
async function startPostgres(dir, port) {
  const owner = postgresUser();
  chownSync(dir, owner.uid, owner.gid);
  const data = join(dir, 'data');
  asPostgres(pgBin('initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  // setpriv execs postgres, so the handle's PID is the postmaster's.
  const handle = startProcess('postgres', 'setpriv', [
    `--reuid=${owner.uid}`, `--regid=${owner.gid}`, '--init-groups', '--', pgBin('postgres'), '-D', data, '-p', String(port), '-k', dir,
    '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'max_connections=200', '-c', 'logging_collector=off',
  ]);
  await waitForListen(port, { handle, timeoutMs: 30_000 });
  asPostgres(pgBin('pgbench'), ['-i', '-q', '-s', String(SCALE), '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'postgres']);
  return handle;
}

/** One pgbench run: resolves `{ tps, latencyMs, transactions, clientCpu }` or `{ error }`. */
async function measure(port, load, opt) {
  const args = [...load.args, '-c', String(opt.clients), '-j', '2', '-T', String(opt.duration), '-n', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'postgres'];
  const r = await runCommandWithCpu(pgBin('pgbench'), args, { timeoutMs: (opt.duration + 60) * 1000 });
  const tps = /tps = ([\d.]+)/.exec(r.stdout);
  const latency = /latency average = ([\d.]+) ms/.exec(r.stdout);
  const done = /number of transactions actually processed: (\d+)/.exec(r.stdout);
  const failed = /number of failed transactions: (\d+)/.exec(r.stdout);
  if (r.code !== 0 || !tps) {
    const why = r.timedOut ? 'timed out' : r.error ? r.error.message : `exit ${r.code ?? r.signal}`;
    return { error: `pgbench ${why}: ${(r.stdout + r.stderr).trim().split('\n').slice(-2).join(' | ')}` };
  }
  return { tps: Number(tps[1]), latencyMs: Number(latency?.[1]), transactions: Number(done?.[1] ?? 0), failed: Number(failed?.[1] ?? 0), clientCpu: (100 * r.cpuSeconds) / opt.duration };
}

async function main() {
  const opt = options();
  installCleanup();
  const machine = machineInfo([{ label: 'postgres', cmd: pgBin('postgres'), args: ['--version'] }]);
  machine.push(...pathVersions(opt));
  const loadAtStart = loadavg();
  log(`command: ${commandLine()}`);
  for (const [k, v] of machine) log(`${k.padEnd(8)} ${v}`);
  const loads = withProxyBound(LOADS, opt.proxyCpu);
  log(`plan: ${opt.rounds} round(s) x ${opt.targets.join(',')} x (${loads.map((l) => l.label).join('; ')}); ${opt.clients} clients, ${opt.duration} s each; proxies with ${PROXY_THREADS} threads`);

  const ports = await freePorts(1 + PATHS.length);
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-bench-pgbench-'));
  onInterrupt(() => rmSync(dir, { recursive: true, force: true }));
  let running = new Map();
  let skipped = new Map();
  const servers = [];
  let budget = null;
  try {
    servers.push(await startPostgres(dir, ports[0]));
    ({ running, skipped } = await startPaths({ opt, dir, ports: ports.slice(1), backends: [ports[0]], threads: PROXY_THREADS, log }));
    budget = openProxyBudget('fulcrum-bench-pgbench', opt.proxyCpu, skipped, log);
    const samples = await runInterleaved({
      running,
      order: opt.targets,
      loads,
      rounds: opt.rounds,
      // PostgreSQL forks a process per connection: the postmaster's CPU is
      // only a part of the server's, so the server column is left out.
      servers: [],
      budget,
      skipped,
      log,
      measure: (name, t, load) => measure(t.port, load, opt),
      describe: (name, load, s) => `${load.label.padEnd(30)} ${fixed(s.tps, 0).padStart(7)} tps  latency ${fixed(s.latencyMs, 3)} ms  failed ${s.failed}  ` +
        `proxy cpu ${proxyCpuText(s)}  pgbench ${fixed(s.clientCpu, 0)}%  machine ${fixed(s.busy, 0)}% busy`,
    });
    const report = summary(opt, loads, samples, skipped);
    const load = `${loadAtStart} at start, ${loadavg()} at end`;
    log(`\n${report}\nloadavg: ${load}`);
    if (opt.write) {
      const how = writeRunSection(SECTION, [
        '## PostgreSQL through the proxies (bench/pgbench.mjs)',
        '',
        `pgbench select-only (-S, scale ${SCALE}), ${opt.clients} clients, 2 threads, ${opt.duration} s per measurement, ${opt.rounds} interleaved round(s); ` +
          `persistent connections and a new connection per transaction (-C). One PostgreSQL server (fsync off). Fulcrum \`workers: ${PROXY_THREADS}\`, ` +
          `HAProxy \`nbthread ${PROXY_THREADS}\` (\`mode tcp\`), nginx stream \`worker_processes ${PROXY_THREADS}\`.` + (opt.quick ? ' **Quick smoke run; not a measurement.**' : ''),
        '',
      ], [...machine, ['loadavg', load]], report);
      log(`\n${RESULTS_FILE}: section '${SECTION}' ${how}`);
    }
  } finally {
    await endRun({ running, servers, budget, dir, serverGraceMs: 10_000 });
  }
}

function summary(opt, loads, samples, skipped) {
  const list = (name, load) => samples.get(`${name}/${load.key}`) ?? [];
  const med = (name, load) => median(list(name, load).map((s) => s.tps));
  const usPerTx = (name, load) => median(list(name, load).filter((s) => s.proxyCpu > 0).map((s) => (s.proxyCpu / 100) * 1e6 / s.tps));
  const parts = [];
  for (const load of loads) {
    parts.push(`**${load.label}**${proxyBoundNote(load, opt.proxyCpu)}`, '');
    const rows = opt.targets.map((name) => {
      const l = list(name, load);
      if (l.length === 0) return [name, load.budget && name === 'direct' ? 'n/a' : 'skipped', '', '', '', '', '', '', ''];
      const r = summarize(l.map((s) => s.tps));
      const proxy = l.map((s) => s.proxyCpu).filter(Number.isFinite);
      return [
        name,
        fixed(r.median, 0),
        `${fixed(r.min, 0)}–${fixed(r.max, 0)}`,
        fixed(median(l.map((s) => s.latencyMs)), 3),
        ratio(med(name, load), med('haproxy', load)),
        proxy.length ? `${fixed(median(proxy), 0)}%` : '–',
        proxy.length ? fixed(usPerTx(name, load), 1) : '–',
        String(l.reduce((n, s) => n + s.failed, 0)),
        String(l.length),
      ];
    });
    parts.push(markdownTable(['target', 'median tps', 'min–max', 'latency ms', 'vs haproxy', 'proxy CPU', 'proxy µs/tx', 'failed tx', 'runs'], rows));
    parts.push('');
    const f = med('fulcrum', load);
    const h = med('haproxy', load);
    if (Number.isFinite(f) && Number.isFinite(h)) parts.push(`fulcrum / haproxy: ${ratio(f, h)}.`, '');
    const k = med('kernel', load);
    if (Number.isFinite(k) && Number.isFinite(h)) parts.push(`kernel / haproxy: ${ratio(k, h)} — target ≥ 1.2× ${k >= 1.2 * h ? 'met' : 'NOT met'}.`, '');
  }
  parts.push('tps and latency: pgbench\'s own (median over rounds). Proxy CPU: median, % of one core (all its threads and processes); µs/tx: its CPU time per transaction.');
  const others = otherWorkNote([...samples.values()].flat().map((s) => s.others));
  if (others) parts.push(others);
  for (const [name, reason] of skipped) parts.push(`- ${name} skipped: ${reason}`);
  return parts.join('\n');
}

main().catch((err) => {
  process.stderr.write(`pgbench: ${err.stack ?? err}\n`);
  process.exitCode = 1;
});
