#!/usr/bin/env node
// DNS discovery at scale: a service whose 1,000 backends come from one SRV
// record (dnsmasq on a loopback port, 1,000 records: one host, 1,000 ports)
// keeps serving while the record set changes (dnsmasq restarted with other
// weights and one record swapped, each change re-resolved and applied as a
// new 1,000-backend set) and while the config file is reloaded (SIGHUP).
// A steady client opens connection after connection (connect, read the
// greeting, echo a byte, close), one at a time; the longest gap between two
// completed connections is the pause a client sees. The same client runs the
// same time with nothing changing first, as the baseline.
//
//   node bench/discovery-gap.mjs [--backends 1000] [--seconds 10] [--changes 5] [--write]
//
// Needs dnsmasq (Debian: apt-get install dnsmasq) and a built tree.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machineInfo } from './lib/machine.mjs';
import { freePort } from './lib/net.mjs';
import { writeRunSection } from './lib/results.mjs';

const { values } = parseArgs({
  options: {
    backends: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '10' },
    changes: { type: 'string', default: '5' },
    write: { type: 'boolean', default: false },
  },
});
const COUNT = Number(values.backends);
const SECONDS = Number(values.seconds);
const CHANGES = Number(values.changes);
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const SRV = '_game._tcp.fulcrum.test';
const dir = mkdtempSync(join(tmpdir(), 'fulcrum-bench-dns-'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = [];

/** COUNT + 2 backends on 127.0.0.1 (one swapped in and out of the records, one added through the API). */
async function startBackends() {
  const servers = [];
  const ports = [];
  while (ports.length < COUNT + 2) {
    const server = net.createServer((s) => {
      s.on('error', () => {});
      s.write('hi\n');
      s.pipe(s);
    });
    const port = await new Promise((resolve) => {
      server.once('error', () => resolve(undefined));
      server.listen(0, '127.0.0.1', () => resolve(server.address().port));
    });
    if (port !== undefined) {
      servers.push(server);
      ports.push(port);
    }
  }
  return { servers, ports };
}

function writeRecords(ports, variant) {
  writeFileSync(join(dir, 'hosts'), '127.0.0.1 host1.fulcrum.test\n');
  // Variant v: weights shift by v, and the last record alternates between two ports.
  const used = [...ports.slice(0, COUNT - 1), ports[COUNT - 1 + (variant % 2)]];
  writeFileSync(join(dir, 'srv.conf'), used.map((p, i) => `srv-host=${SRV},host1.fulcrum.test,${p},0,${1 + ((i + variant) % 5)}`).join('\n') + '\n');
}

async function startDnsmasq(port) {
  const child = spawn('dnsmasq', ['--no-daemon', '--no-resolv', '--no-hosts', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces',
    `--addn-hosts=${join(dir, 'hosts')}`, `--conf-file=${join(dir, 'srv.conf')}`, '--local-ttl=1', '--local=/fulcrum.test/', '--pid-file=', '--user=root', '--cache-size=0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stderr.on('data', (c) => (out += c));
  child.stdout.on('data', (c) => (out += c));
  for (let i = 0; i < 200 && !out.includes('read '); i++) await sleep(10);
  children.push(child);
  return child;
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(3000).then(() => child.kill('SIGKILL'))]);
  await exited;
}

async function api(adminPort, path) {
  const res = await fetch(`http://127.0.0.1:${adminPort}${path}`);
  return res.json();
}

/** The steady client for `ms`: returns completions, failures and the longest gap between completions. */
async function steadyClient(port, ms) {
  const end = Date.now() + ms;
  let last = Date.now();
  let maxGap = 0;
  let done = 0;
  let failed = 0;
  while (Date.now() < end && done + failed < 1_000_000) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      let got = '';
      const timer = setTimeout(() => { s.destroy(); resolve(false); }, 2000);
      s.on('data', (c) => {
        got += c;
        if (got === 'hi\n') s.write('x');
        else if (got === 'hi\nx') { clearTimeout(timer); s.destroy(); resolve(true); }
      });
      s.on('error', () => { clearTimeout(timer); resolve(false); });
    });
    const now = Date.now();
    if (ok) {
      maxGap = Math.max(maxGap, now - last);
      last = now;
      done++;
    } else failed++;
  }
  return { done, failed, maxGap };
}

async function main() {
  const { servers, ports } = await startBackends();
  writeRecords(ports, 0);
  const dnsPort = await freePort();
  let dns = await startDnsmasq(dnsPort);
  const [listen, adminPort] = [await freePort(), await freePort()];
  const configFile = join(dir, 'fulcrum.yaml');
  writeFileSync(configFile, `workers: 2\nlog:\n  level: debug\nconnection_log:\n  output: 'off'\nadmin:\n  listen: 127.0.0.1:${adminPort}\nresolvers:\n  servers: [127.0.0.1:${dnsPort}]\n  min_ttl: 1s\n  retry: 200ms\nservices:\n  - name: game\n    listen: 127.0.0.1:${listen}\n    balance: weighted\n    backends:\n      - srv: ${SRV}\n`);
  const fulcrum = spawn(process.execPath, [CLI, 'run', '-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(fulcrum);
  const applies = [];
  let partial = '';
  fulcrum.stdout.setEncoding('utf8').on('data', (chunk) => {
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop();
    for (const line of lines) {
      try {
        const entry = JSON.parse(line);
        if (entry.msg === 'running backend set applied' && entry.reason === 'dns') applies.push(entry.ms);
      } catch {}
    }
  });
  fulcrum.stderr.on('data', (c) => process.stderr.write(c));
  const started = Date.now();
  for (;;) {
    try {
      const s = await api(adminPort, '/api/status');
      if (s.services[0].backends.length === COUNT) break;
    } catch {}
    if (Date.now() - started > 30_000) throw new Error('the 1,000 backends never appeared');
    await sleep(50);
  }
  const firstMs = Date.now() - started;
  console.log(`${COUNT} backends from SRV after ${firstMs} ms`);

  const baseline = await steadyClient(listen, SECONDS * 1000);
  console.log(`baseline: ${baseline.done} connections, ${baseline.failed} failed, longest gap ${baseline.maxGap} ms`);
  applies.length = 0;
  let reloads = 0;
  const changer = (async () => {
    const every = (SECONDS * 1000) / (CHANGES + 1);
    for (let v = 1; v <= CHANGES; v++) {
      await sleep(every / 2);
      writeRecords(ports, v);
      await stop(dns);
      dns = await startDnsmasq(dnsPort);
      await sleep(every / 2);
      fulcrum.kill('SIGHUP');
      reloads++;
    }
  })();
  const changing = await steadyClient(listen, SECONDS * 1000);
  await changer;
  const status = await api(adminPort, '/api/status');
  // Adding and removing one backend through the admin API on this 1,000-backend service.
  const apiTimes = [];
  for (let i = 0; i < 10; i++) {
    const address = `127.0.0.1:${ports[COUNT + 1]}`;
    const add = await fetch(`http://127.0.0.1:${adminPort}/api/services/game/backends`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ address }) });
    const added = await add.json();
    const del = await fetch(`http://127.0.0.1:${adminPort}/api/services/game/backends/${address}`, { method: 'DELETE' });
    const removed = await del.json();
    if (add.status !== 201 || del.status !== 200) throw new Error(`API add/remove: ${add.status} ${JSON.stringify(added)} / ${del.status} ${JSON.stringify(removed)}`);
    apiTimes.push(added.appliedMs, removed.appliedMs);
  }
  console.log(`API add/remove on ${COUNT + 0} backends, applied in (ms): ${apiTimes.join(', ')}`);
  console.log(`changing: ${changing.done} connections, ${changing.failed} failed, longest gap ${changing.maxGap} ms; ${applies.length} DNS applies (ms: ${applies.join(', ')}), ${reloads} reloads; ${status.services[0].backends.length} backends now`);

  await stop(fulcrum);
  await stop(dns);
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });

  const max = (xs) => (xs.length === 0 ? '-' : Math.max(...xs));
  const sorted = [...apiTimes].sort((a, b) => a - b);
  const apiLine = `Adding and removing one backend through the admin API on this ${COUNT}-backend service, 10 times each: applied (every worker running the new set) in median ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted.at(-1)} ms.`;
  const report = [
    '| phase | connections | failed | longest gap (ms) | DNS applies | apply time max (ms) | reloads |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    `| steady (no change) | ${baseline.done} | ${baseline.failed} | ${baseline.maxGap} | - | - | - |`,
    `| SRV re-resolved + changed ${CHANGES}x, reloaded ${reloads}x | ${changing.done} | ${changing.failed} | ${changing.maxGap} | ${applies.length} | ${max(applies)} | ${reloads} |`,
    '',
    apiLine,
  ].join('\n');
  console.log(report);
  if (values.write) {
    writeRunSection('discovery-gap', [
      '## DNS discovery: 1,000 SRV backends re-resolved and reloaded (bench/discovery-gap.mjs)',
      '',
      `One service, \`balance: weighted\`, whose ${COUNT} backends come from one SRV record served by dnsmasq (TTL 1 s, min_ttl 1s). During the second phase the record set changes ${CHANGES} times (weights shift, one record swapped; dnsmasq restarted, so each change is also a short DNS outage) and the config file is reloaded (SIGHUP) as often. A steady client opens one connection after another (greeting, 1-byte echo, close); the longest gap between two completed connections is the pause a client sees. Apply time: the runtime's "running backend set applied" (engine.apply of all ${COUNT} backends to both workers running it).`,
      '',
      `All ${COUNT} backends live ${firstMs} ms after \`fulcrum run\` was spawned (node's own start included).`,
      '',
    ], [...machineInfo([{ label: 'dnsmasq', cmd: 'dnsmasq', args: ['--version'] }]), ['load average (1 min) at the end', loadavg()[0].toFixed(1)]], report);
  }
}

main().catch(async (err) => {
  console.error(err);
  for (const c of children) await stop(c).catch(() => {});
  process.exitCode = 1;
});
