// The namespaces of the kernel UDP datapath's lifecycle tests
// (test/system/udp-kernel-*.test.ts): a client (c), the balancer (p, with
// `front` towards the client and `back` towards the backends) and one
// backend namespace (b) holding four addresses whose default route is the
// balancer. Every process started here is killed at teardown, the namespaces
// removed.
import { type Test } from 'tap';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import readline from 'node:readline';
import { removeStaleNamespaces, run, killTree, waitFor } from './ha-rig.mjs';

export const CLIENT = '10.203.1.2';
export const FRONT = '10.203.1.1';
export const BACK = '10.203.2.1';
export const BACKENDS = ['10.203.2.11', '10.203.2.12', '10.203.2.13', '10.203.2.14'];
const HELPERS = new URL('./', import.meta.url).pathname;

export type Host = 'c' | 'p' | 'b';

export async function must(cmd: string, args: string[]): Promise<string> {
  const result = await run(cmd, args);
  if (result.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${result.stderr.trim() || `exit ${result.code}`}`);
  return result.stdout;
}

export class KernelNatRig {
  readonly prefix: string;
  constructor(prefix: string) {
    this.prefix = prefix;
  }

  ns(host: Host): string {
    return `${this.prefix}${host}`;
  }

  static async create(t: Test, stalePrefix: string): Promise<KernelNatRig> {
    await removeStaleNamespaces(stalePrefix);
    const rig = new KernelNatRig(`${stalePrefix}${process.pid}-`);
    t.teardown(async () => {
      for (const host of ['c', 'b', 'p'] as const) await run('ip', ['netns', 'del', rig.ns(host)]);
    });
    for (const host of ['c', 'p', 'b'] as const) {
      await must('ip', ['netns', 'add', rig.ns(host)]);
      await must('ip', ['-n', rig.ns(host), 'link', 'set', 'lo', 'up']);
    }
    await must('ip', ['-n', rig.ns('c'), 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'front', 'netns', rig.ns('p')]);
    await must('ip', ['-n', rig.ns('b'), 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'back', 'netns', rig.ns('p')]);
    const address = async (host: Host, dev: string, cidrs: string[]): Promise<void> => {
      for (const cidr of cidrs) await must('ip', ['-n', rig.ns(host), 'addr', 'add', cidr, 'dev', dev]);
      await must('ip', ['-n', rig.ns(host), 'link', 'set', dev, 'up']);
    };
    await address('c', 'eth0', [`${CLIENT}/24`]);
    await address('p', 'front', [`${FRONT}/24`]);
    await address('p', 'back', [`${BACK}/24`]);
    await address('b', 'eth0', BACKENDS.map((ip) => `${ip}/24`));
    await must('ip', ['-n', rig.ns('c'), 'route', 'add', 'default', 'via', FRONT]);
    await must('ip', ['-n', rig.ns('b'), 'route', 'add', 'default', 'via', BACK]);
    return rig;
  }

  /** A long-running process in a namespace, killed (with its children) at teardown. */
  spawn(t: Test, host: Host, cmd: string, args: string[]): { child: ChildProcessWithoutNullStreams; stdout: () => string; stderr: () => string; exited: () => boolean } {
    const child = spawn('ip', ['netns', 'exec', this.ns(host), cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    let exited = false;
    const exit = new Promise<void>((resolve) => child.once('exit', () => {
      exited = true;
      resolve();
    }));
    t.teardown(async () => {
      if (!exited && child.pid !== undefined) killTree(child.pid, 'SIGTERM');
      await Promise.race([exit, new Promise((r) => setTimeout(r, 5_000))]);
      if (!exited && child.pid !== undefined) killTree(child.pid, 'SIGKILL');
    });
    return { child, stdout: () => stdout, stderr: () => stderr, exited: () => exited };
  }

  /** The four echo backends (ids b1..b4 answer "WHO?"), bound. */
  async startBackends(t: Test): Promise<void> {
    const backends = this.spawn(t, 'b', process.execPath, [join(HELPERS, 'udp-echo-backends.mjs'), ...BACKENDS.map((ip, i) => `${ip}:9000:b${i + 1}`)]);
    if (!(await waitFor(async () => backends.stdout().includes('ready'), 10_000))) throw new Error(`the backends did not start: ${backends.stderr()}`);
  }

  /** The client helper (udp-flow-client.mjs): one JSON command, one JSON answer. */
  startClient(t: Test): (command: Record<string, unknown>) => Promise<any> {
    const { child } = this.spawn(t, 'c', process.execPath, [join(HELPERS, 'udp-flow-client.mjs')]);
    const answers = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    return async (command) => {
      child.stdin.write(`${JSON.stringify(command)}\n`);
      let timer: NodeJS.Timeout | undefined;
      const next = await Promise.race([answers.next(), new Promise<null>((r) => (timer = setTimeout(() => r(null), 30_000)))]);
      clearTimeout(timer);
      if (!next || next.done) throw new Error(`the client helper did not answer ${JSON.stringify(command)}`);
      return JSON.parse(next.value);
    };
  }

  /** An admin API request from inside the balancer's namespace (node, not curl: curl hangs under test/sanitized.sh's LD_PRELOAD). */
  async admin(adminAddress: string, method: 'GET' | 'POST', path: string): Promise<string> {
    const script = `const r=require('http').request('http://${adminAddress}${path}',{method:'${method}'},(res)=>{let d='';res.on('data',(c)=>d+=c);res.on('end',()=>process.stdout.write(d))});r.on('error',()=>{});r.end();`;
    return (await run('ip', ['netns', 'exec', this.ns('p'), process.execPath, '-e', script])).stdout;
  }

  /** A metric's value for the given labels (the first match), or undefined. */
  async metric(adminAddress: string, name: string, labels: string): Promise<number | undefined> {
    const text = await this.admin(adminAddress, 'GET', '/metrics');
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
    return line === undefined ? undefined : Number(line.split(' ').at(-1));
  }
}

/** The connection log's JSON records in `path` (none while it does not exist). */
export function logRecords(path: string): any[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}
