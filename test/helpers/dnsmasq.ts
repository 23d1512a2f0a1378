// A real DNS server for the discovery tests: dnsmasq (Debian's package) in the
// foreground on a free loopback port, authoritative for fulcrum.test only (no
// upstream, nothing forwarded), serving A/AAAA records from a hosts file and
// SRV records from --srv-host lines in a conf file. dnsmasq re-reads the
// hosts file on SIGHUP, but not --srv-host lines: setSrv() restarts it on the
// same port. Stopped by PID at teardown.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { freePort } from './backends.js';
import { delay, waitUntil } from './traffic.js';

/** One SRV record: target host, port, priority, weight. */
export interface SrvRecord {
  target: string;
  port: number;
  priority?: number;
  weight?: number;
}

export class Dnsmasq {
  readonly port: number;
  readonly dir: string;
  readonly ttl: number;
  #child: ChildProcess | undefined;
  #output = '';

  constructor(port: number, dir: string, ttl: number) {
    this.port = port;
    this.dir = dir;
    this.ttl = ttl;
  }

  /** `127.0.0.1:PORT`, for resolvers.servers. */
  get server(): string {
    return `127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  output(): string {
    return this.#output;
  }

  /** Replace the A/AAAA records (name -> addresses) and make dnsmasq re-read them (SIGHUP). */
  async setHosts(hosts: Record<string, readonly string[]>): Promise<void> {
    writeHosts(this.dir, hosts);
    if (this.#child === undefined) return;
    const before = this.#output.split('read ').length;
    this.#child.kill('SIGHUP');
    await waitUntil('dnsmasq to re-read its hosts file', () => this.#output.split('read ').length > before, 5_000, 10);
  }

  /** Replace the SRV records (name -> records): dnsmasq reads them at start only, so it restarts. */
  async setSrv(srv: Record<string, readonly SrvRecord[]>): Promise<void> {
    writeSrv(this.dir, srv);
    if (this.#child === undefined) return;
    await this.stop();
    await this.start();
  }

  async start(): Promise<void> {
    const child = spawn('dnsmasq', [
      '--no-daemon', '--no-resolv', '--no-hosts', `--port=${this.port}`, '--listen-address=127.0.0.1', '--bind-interfaces',
      `--addn-hosts=${join(this.dir, 'hosts')}`, `--conf-file=${join(this.dir, 'srv.conf')}`, `--local-ttl=${this.ttl}`,
      '--local=/fulcrum.test/', '--pid-file=', '--user=root', '--cache-size=0',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    this.#output = '';
    child.stdout?.setEncoding('utf8').on('data', (c: string) => (this.#output += c));
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (this.#output += c));
    child.once('exit', () => {
      if (this.#child === child) this.#child = undefined;
    });
    // It logs "read .../hosts" once it serves (the port bound, the records loaded).
    await waitUntil('dnsmasq to start', () => this.#output.includes('read ') || this.#child !== child, 5_000, 10);
    if (this.#child !== child) throw new Error(`dnsmasq did not start: ${this.#output}`);
  }

  /** Stop it (SIGTERM, SIGKILL after 3 s) and wait for the exit. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const killed = delay(3_000).then(() => child.kill('SIGKILL'));
    await Promise.race([exited, killed]);
    await exited;
    this.#child = undefined;
  }
}

/** Start dnsmasq with these records; `ttl`: the TTL of every answer (--local-ttl). */
export async function startDnsmasq(t: Test, hosts: Record<string, readonly string[]>, srv: Record<string, readonly SrvRecord[]> = {}, ttl = 1): Promise<Dnsmasq> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-dns-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeHosts(dir, hosts);
  writeSrv(dir, srv);
  for (let attempt = 1; ; attempt++) {
    const dns = new Dnsmasq(await freePort(), dir, ttl);
    try {
      await dns.start();
      t.teardown(() => dns.stop());
      return dns;
    } catch (err) {
      await dns.stop();
      if (attempt >= 5) throw err;
    }
  }
}

function writeHosts(dir: string, hosts: Record<string, readonly string[]>): void {
  const lines = Object.entries(hosts).flatMap(([name, addresses]) => addresses.map((a) => `${a} ${name}`));
  writeFileSync(join(dir, 'hosts'), `${lines.join('\n')}\n`);
}

function writeSrv(dir: string, srv: Record<string, readonly SrvRecord[]>): void {
  const lines = Object.entries(srv).flatMap(([name, records]) =>
    records.map((r) => `srv-host=${name},${r.target},${r.port},${r.priority ?? 0},${r.weight ?? 0}`),
  );
  writeFileSync(join(dir, 'srv.conf'), `${lines.join('\n')}\n`);
}
