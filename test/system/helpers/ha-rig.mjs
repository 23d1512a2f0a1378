// A VRRP test rig in network namespaces, shared by test/system/ha-*.test.ts
// and bench/failover.mjs. One bridge in its own namespace joins one namespace
// per host (two load-balancer nodes, a client, backends, a hostile sender);
// each host has eth0 with a private 10.200.0.0/24 address that exists only in
// its namespace. Every namespace carries the rig's unique prefix and destroy()
// removes all of them and every process the rig started (by PID).
//
// Plain JavaScript so the benchmark can use it without a TypeScript loader.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CLI = join(ROOT, 'dist', 'cli.js');
export const SUBNET = '10.200.0';
export const VIP = `${SUBNET}.100`;

/** Host name → last octet of its address. */
export const HOSTS = { n1: 1, n2: 2, cl: 10, b1: 21, b2: 22, x: 30 };

export function address(host) {
  return `${SUBNET}.${HOSTS[host]}`;
}

export function run(cmd, args, { timeoutMs = 10_000, input } = {}) {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
    if (input !== undefined) child.stdin.end(input);
  });
}

export async function must(cmd, args) {
  const result = await run(cmd, args);
  if (result.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${result.stderr.trim() || `exit ${result.code}`}`);
  return result.stdout;
}

/** `pid` and every process it started, children first (from /proc/PID/task/TID/children). */
export function processTree(pid) {
  const found = [];
  const visit = (p) => {
    let tasks = [];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      return; // gone
    }
    for (const tid of tasks) {
      let children = '';
      try {
        children = readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const child of children.trim().split(/\s+/).filter(Boolean)) visit(Number(child));
    }
    found.push(p);
  };
  visit(pid);
  return found;
}

/**
 * Signal a process we started and every process it started (keepalived forks a
 * VRRP child: SIGKILL to the parent alone lets the child hand over gracefully,
 * which is not what "kill -9 the node" means). All are signalled at once.
 */
export function killTree(pid, signal = 'SIGKILL') {
  for (const p of processTree(pid)) {
    try {
      process.kill(p, signal);
    } catch {
      // already gone
    }
  }
}

export class HaRig {
  /** @param {string} prefix unique per run, e.g. `fulha-${process.pid}-` */
  constructor(prefix) {
    this.prefix = prefix;
    this.namespaces = [];
    this.processes = new Set();
    this.dir = mkdtempSync(join(tmpdir(), 'fulha-'));
  }

  ns(host) {
    return `${this.prefix}${host}`;
  }

  /** Build the bridge and every host in HOSTS (or `hosts`). */
  static async create(prefix, hosts = Object.keys(HOSTS)) {
    const rig = new HaRig(prefix);
    try {
      await rig.addSwitch();
      for (const host of hosts) {
        const ns = await rig.attach(host, `${address(host)}/24`);
        // New namespaces start with default sysctls: let services bind the VIP
        // before it arrives (also done per socket with IP_FREEBIND).
        await must('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ip_nonlocal_bind=1']);
      }
    } catch (err) {
      await rig.destroy();
      throw err;
    }
    return rig;
  }

  /** The switch: a namespace holding the bridge br0 that every attach()ed host is a port of. */
  async addSwitch() {
    const sw = this.ns('sw');
    await must('ip', ['netns', 'add', sw]);
    this.namespaces.push(sw);
    await must('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'mcast_snooping', '0']);
    await must('ip', ['-n', sw, 'link', 'set', 'br0', 'up']);
  }

  /** A new namespace for `host` whose eth0 (with `cidr`) is a port of the switch's bridge br0. */
  async attach(host, cidr) {
    const ns = this.ns(host);
    const sw = this.ns('sw');
    await must('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    await must('ip', ['-n', sw, 'link', 'add', `v${host}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await must('ip', ['-n', sw, 'link', 'set', `v${host}`, 'master', 'br0', 'up']);
    await must('ip', ['-n', ns, 'addr', 'add', cidr, 'dev', 'eth0']);
    await must('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    return ns;
  }

  /** Run a command to completion inside a host's namespace. */
  exec(host, cmd, args, options) {
    return run('ip', ['netns', 'exec', this.ns(host), cmd, ...args], options);
  }

  /** Start a long-running process in a host's namespace (`stdin: true` gives it a pipe); stopped by destroy() if still running. */
  spawn(host, cmd, args, { onLine, stdin = false } = {}) {
    const child = spawn('ip', ['netns', 'exec', this.ns(host), cmd, ...args], { stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    const entry = { child, stdout: '', stderr: '', exited: false };
    this.processes.add(entry);
    let partial = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      entry.stdout += chunk;
      partial += chunk;
      const lines = partial.split('\n');
      partial = lines.pop();
      if (onLine) for (const line of lines) onLine(line);
    });
    child.stderr.on('data', (chunk) => {
      entry.stderr += chunk;
    });
    entry.exit = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        entry.exited = true;
        resolve({ code, signal });
      }),
    );
    return entry;
  }

  /** Whether `host` has `ip` on eth0 now. */
  async holds(host, ip = VIP) {
    const { stdout } = await run('ip', ['-n', this.ns(host), '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    return stdout.includes(` ${ip}/`);
  }

  /**
   * Watch `host`'s addresses through `ip monitor` (netlink events, no polling
   * delay): returns { events: [{at, added}], stop() }, `at` in epoch ms (Date.now(), comparable across processes).
   */
  watchVip(host, ip = VIP) {
    const events = [];
    const monitor = spawn('ip', ['-n', this.ns(host), '-o', 'monitor', 'address'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const tracked = { child: monitor, stdout: '', stderr: '', exited: false, exit: new Promise((r) => monitor.on('exit', r)) };
    this.processes.add(tracked);
    let partial = '';
    monitor.stdout.setEncoding('utf8');
    monitor.stdout.on('data', (chunk) => {
      const at = Date.now();
      partial += chunk;
      const lines = partial.split('\n');
      partial = lines.pop();
      for (const line of lines) {
        if (!line.includes(` ${ip}/`)) continue;
        events.push({ at, added: !line.startsWith('Deleted') });
      }
    });
    return {
      events,
      /** First event at or after `since` that added the address. */
      addedAfter: (since) => events.find((e) => e.added && e.at >= since),
      removedAfter: (since) => events.find((e) => !e.added && e.at >= since),
      stop: () => monitor.kill('SIGTERM'),
    };
  }

  /** Write a file in the rig's temp directory; returns its path. */
  file(name, text) {
    const path = join(this.dir, name);
    writeFileSync(path, text);
    return path;
  }

  /** Stop every process still running (SIGKILL, by PID), then remove the namespaces and the temp dir. */
  async destroy() {
    for (const entry of this.processes) {
      if (!entry.exited && entry.child.exitCode === null && entry.child.signalCode === null) {
        // `ip netns exec` execs the command, so this PID is the command itself.
        killTree(entry.child.pid);
      }
    }
    await Promise.all([...this.processes].map((e) => Promise.race([e.exit, new Promise((r) => setTimeout(r, 2000))])));
    this.processes.clear();
    for (const ns of this.namespaces.reverse()) await run('ip', ['netns', 'del', ns]);
    this.namespaces = [];
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Remove namespaces a crashed earlier run with this prefix left behind. */
export async function removeStaleNamespaces(prefix) {
  const { stdout } = await run('ip', ['netns', 'list']);
  for (const line of stdout.split('\n')) {
    const name = line.split(' ')[0];
    if (name && name.startsWith(prefix)) await run('ip', ['netns', 'del', name]);
  }
}

/**
 * The top of a node's config: one worker, debug logs and the TCP service
 * `web` on `vip`:8080 over `backends` (port 9000); `serviceKeys` are more
 * lines of that service (`    balance: roundrobin`).
 */
export function webServiceConfig(vip, backends, serviceKeys = '') {
  return `workers: 1
drain_timeout: 1s
log:
  level: debug
services:
  - name: web
    listen: ${vip}:8080
${serviceKeys}    timeouts:
      connect: 500ms
    backends:
${backends.map((b) => `      - address: ${b}:9000\n`).join('')}`;
}

/** A node's config; `ha: false` gives the plain load balancer that runs beside keepalived on its node. */
export function fulcrumConfig({ priority, advertInterval = '100ms', preempt = true, unicastPeers, extra = '', track = '', ha = true, serviceKeys = '' }) {
  const services = webServiceConfig(VIP, [address('b1'), address('b2')], serviceKeys);
  if (!ha) return services;
  return `${services}ha:
  interface: eth0
  vrid: 51
  priority: ${priority}
  virtual_ips: [${VIP}/24]
  advert_interval: ${advertInterval}
  preempt: ${preempt}
  garp_delay: 0
${unicastPeers ? `  unicast_peers: [${unicastPeers.join(', ')}]\n` : ''}${track}${extra}`;
}

export function keepalivedConfig({ priority, advertInterval = 0.1, preempt = true, unicastSource, unicastPeers, name = 'ka' }) {
  const unicast = unicastPeers
    ? `  unicast_src_ip ${unicastSource}\n  unicast_peer {\n${unicastPeers.map((p) => `    ${p}\n`).join('')}  }\n`
    : '';
  return `global_defs {
  router_id fulha_${name}
  vrrp_version 3
  vrrp_garp_master_delay 0
}
vrrp_instance VI_51 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority ${priority}
  advert_int ${advertInterval}
${preempt ? '' : '  nopreempt\n'}${unicast}  virtual_ipaddress {
    ${VIP}/24 dev eth0
  }
}
`;
}

/** Start keepalived (VRRP only, foreground, console log) in `host` with its own config and pid files. */
export function startKeepalived(rig, host, config) {
  const dir = mkdtempSync(join(rig.dir, `ka-${host}-`));
  const conf = join(dir, 'keepalived.conf');
  writeFileSync(conf, config);
  return rig.spawn(host, 'keepalived', [
    '--dont-fork',
    '--log-console',
    '--log-detail',
    '--vrrp',
    '--use-file', conf,
    '--pid', join(dir, 'keepalived.pid'),
    '--vrrp_pid', join(dir, 'vrrp.pid'),
    '--checkers_pid', join(dir, 'checkers.pid'),
  ]);
}

/** Start `fulcrum run` in `host` with `config`. */
export function startFulcrum(rig, host, config, { onLine } = {}) {
  const path = rig.file(`fulcrum-${host}-${Date.now()}.yaml`, config);
  return rig.spawn(host, process.execPath, [CLI, 'run', '-c', path], { onLine });
}

/**
 * A client in `host` that connects to VIP:8080 every `intervalMs` for `count`
 * attempts, each with a `timeoutMs` limit, and prints one JSON line per
 * attempt: {"at": epoch ms of the connect, "ok", "reply"|"error"}.
 */
export function startProbeClient(rig, host, { intervalMs = 50, count = 100, timeoutMs = 1000, target = `${VIP}:8080` } = {}) {
  const [ip, port] = target.split(':');
  const script = `const net=require('net');let n=0;
const one=()=>{const at=Date.now();let reply='';let done=false;
const fin=(ok,error)=>{if(done)return;done=true;s.destroy();console.log(JSON.stringify(ok?{at,ok,reply:reply.trim()}:{at,ok,error}))};
const s=net.connect(${Number(port)},${JSON.stringify(ip)});s.setTimeout(${timeoutMs},()=>fin(false,'timeout'));
s.on('data',(d)=>reply+=d);s.on('end',()=>fin(reply.length>0,reply.length>0?undefined:'empty'));s.on('error',(e)=>fin(false,e.code));};
const timer=setInterval(()=>{one();if(++n>=${count}){clearInterval(timer);setTimeout(()=>process.exit(0),${timeoutMs + 100})}},${intervalMs});one();n++;`;
  return rig.spawn(host, process.execPath, ['-e', script]);
}

/** Parsed lines of a probe client. */
export function probeResults(entry) {
  return entry.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
}

/** A backend in `host` that answers each connection with its host name and closes. */
export function startIdBackend(rig, host, port = 9000) {
  const script = `require('net').createServer((s)=>{s.on('error',()=>{});s.end(${JSON.stringify(host)}+'\\n')}).listen(${port},'0.0.0.0',()=>console.log('ready'))`;
  return rig.spawn(host, process.execPath, ['-e', script]);
}

export async function waitFor(predicate, timeoutMs, stepMs = 20) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) return undefined;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Until `output()` contains `text` (bounded). */
export function waitForOutput(entry, text, timeoutMs = 10_000) {
  return waitFor(() => entry.stdout.includes(text) || entry.stderr.includes(text), timeoutMs);
}
