// Command-line options of `fulcrum bench server|client|compare`, parsed with
// node:util parseArgs; every mistake is a UsageError naming the option (exit 2).
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { WORKLOADS, isWorkload, type Direction, type Workload } from '../engine/native.js';
import { UsageError } from '../errors.js';
import type { RunOptions } from './report.js';
import { DEFAULT_MESSAGE_SIZE, type RunTarget } from './run-client.js';
import type { CompareTarget } from './compare.js';

const COMMAND = 'bench';

function usage(message: string): UsageError {
  return new UsageError(message, COMMAND);
}

/** "127.0.0.1:5201", "[::1]:5201". Hosts are numeric addresses (the native side does not resolve names). */
export function parseHostPort(text: string, what: string): RunTarget {
  const match = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  const port = match ? Number(match[2]) : Number.NaN;
  if (!match || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw usage(`${what}: expected HOST:PORT (e.g. 127.0.0.1:5201 or [::1]:5201), got '${text}'`);
  }
  const host = match[1]!;
  if (host === 'localhost') return { host: '127.0.0.1', port };
  if (!/^[0-9.]+$/.test(host) && !host.includes(':')) throw usage(`${what}: '${host}' is not a numeric IPv4 or IPv6 address`);
  return { host, port };
}

function integer(value: string | undefined, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw usage(`--${name}: expected an integer from ${min} to ${max}, got '${value}'`);
  return n;
}

function seconds(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || n <= 0 || n > 86400) throw usage(`--${name}: expected seconds greater than 0, got '${value}'`);
  return n;
}

const LOAD_OPTIONS = {
  duration: { type: 'string', short: 't' },
  interval: { type: 'string', short: 'i' },
  parallel: { type: 'string', short: 'P' },
  direction: { type: 'string' },
  concurrency: { type: 'string', short: 'c' },
  'message-size': { type: 'string', short: 'l' },
  flows: { type: 'string' },
  rate: { type: 'string' },
  threads: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = Record<string, string | boolean | string[] | undefined>;

function parse(args: readonly string[], options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>, positionals: boolean): { values: Values; positionals: string[] } {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals: positionals }) as { values: Values; positionals: string[] };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw usage(message.split('. ')[0] ?? message);
  }
}

function str(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

function loadOptions(values: Values, workload: Workload, defaultDuration: number): RunOptions {
  const direction = str(values, 'direction') ?? 'send';
  if (direction !== 'send' && direction !== 'receive' && direction !== 'both') {
    throw usage(`--direction: expected send, receive or both, got '${direction}'`);
  }
  const rateText = str(values, 'rate');
  const rate = rateText === undefined || rateText === 'max' ? 0 : integer(rateText, 'rate', 1, 100_000_000, 0);
  const udp = workload.startsWith('udp');
  const messageSize = integer(str(values, 'message-size'), 'message-size', udp ? 24 : 1, udp ? 8192 : 1024 * 1024, DEFAULT_MESSAGE_SIZE[workload]);
  if (workload === 'tcp-connrate' && messageSize > 65536) throw usage('--message-size: tcp-connrate messages are at most 65536 bytes');
  const durationS = seconds(str(values, 'duration'), 'duration', defaultDuration);
  return {
    durationS,
    intervalS: Math.min(seconds(str(values, 'interval'), 'interval', 1), durationS),
    parallel: integer(str(values, 'parallel'), 'parallel', 1, 128, 1),
    direction: direction as Direction,
    concurrency: integer(str(values, 'concurrency'), 'concurrency', 1, 10000, 16),
    messageSize,
    flows: integer(str(values, 'flows'), 'flows', 1, 1024, 1),
    rate,
    threads: integer(str(values, 'threads'), 'threads', 0, 64, 0),
  };
}

function workloadOf(text: string | undefined): Workload {
  const w = text ?? 'tcp-throughput';
  if (!isWorkload(w)) throw usage(`--workload: expected one of ${WORKLOADS.join('|')}, got '${w}'`);
  return w;
}

export interface ClientCommandOptions {
  help: boolean;
  target: RunTarget;
  workload: Workload;
  run: RunOptions;
  json: boolean;
}

export function parseClientOptions(args: readonly string[]): ClientCommandOptions | { help: true } {
  const { values, positionals } = parse(args, { ...LOAD_OPTIONS, workload: { type: 'string', short: 'w' }, control: { type: 'string' } }, true);
  if (values.help === true) return { help: true };
  if (positionals.length !== 1) throw usage(`bench client: expected one HOST:PORT, got ${positionals.length === 0 ? 'none' : positionals.join(' ')}`);
  const workload = workloadOf(str(values, 'workload'));
  const target = parseHostPort(positionals[0]!, 'bench client');
  const control = str(values, 'control');
  if (control !== undefined) target.control = parseHostPort(control, '--control');
  return { help: false, target, workload, run: loadOptions(values, workload, 10), json: values.json === true };
}

export interface ServerCommandOptions {
  help: boolean;
  host: string;
  port: number;
  threads: number;
}

export function parseServerOptions(args: readonly string[]): ServerCommandOptions {
  const { values } = parse(args, { port: { type: 'string', short: 'p' }, bind: { type: 'string', short: 'B' }, threads: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, false);
  const host = str(values, 'bind') ?? '0.0.0.0';
  if (!/^[0-9.]+$/.test(host) && !host.includes(':')) throw usage(`--bind: '${host}' is not a numeric IPv4 or IPv6 address`);
  return {
    help: values.help === true,
    host,
    port: integer(str(values, 'port'), 'port', 0, 65535, 5201),
    threads: integer(str(values, 'threads'), 'threads', 1, 64, Math.min(4, availableParallelism())),
  };
}

export interface CompareCommandOptions {
  help: boolean;
  targets: CompareTarget[];
  workloads: Workload[];
  rounds: number;
  /** Load options per workload (message sizes default per workload). */
  run: Record<Workload, RunOptions>;
  svg: string | undefined;
  title: string | undefined;
  json: boolean;
}

export function parseCompareOptions(args: readonly string[]): CompareCommandOptions | { help: true } {
  const { values } = parse(
    args,
    {
      ...LOAD_OPTIONS,
      workload: { type: 'string', short: 'w' },
      direct: { type: 'string' },
      via: { type: 'string', multiple: true },
      rounds: { type: 'string' },
      svg: { type: 'string' },
      title: { type: 'string' },
    },
    false,
  );
  if (values.help === true) return { help: true };
  const targets: CompareTarget[] = [];
  const direct = str(values, 'direct');
  if (direct !== undefined) targets.push({ name: 'direct', ...parseHostPort(direct, '--direct') });
  for (const via of (values.via as string[] | undefined) ?? []) {
    const eq = via.indexOf('=');
    if (eq <= 0) throw usage(`--via: expected NAME=HOST:PORT, got '${via}'`);
    const name = via.slice(0, eq);
    if (targets.some((t) => t.name === name)) throw usage(`--via: target name '${name}' used twice`);
    // NAME=HOST:PORT or NAME=HOST:PORT,control=HOST:PORT (a UDP-only proxy).
    const [address, ...extras] = via.slice(eq + 1).split(',');
    const target: CompareTarget = { name, ...parseHostPort(address ?? '', `--via ${name}`) };
    for (const extra of extras) {
      if (!extra.startsWith('control=')) throw usage(`--via ${name}: expected ',control=HOST:PORT' after the address, got ',${extra}'`);
      target.control = parseHostPort(extra.slice('control='.length), `--via ${name} control`);
    }
    targets.push(target);
  }
  if (targets.length === 0) throw usage('bench compare: give --direct HOST:PORT and/or --via NAME=HOST:PORT');
  const workloadText = str(values, 'workload') ?? 'tcp-throughput';
  const workloads = workloadText === 'all' ? [...WORKLOADS] : workloadText.split(',').map((w) => workloadOf(w.trim()));
  const run = {} as Record<Workload, RunOptions>;
  for (const w of workloads) run[w] = loadOptions(values, w, 5);
  return {
    help: false,
    targets,
    workloads,
    rounds: integer(str(values, 'rounds'), 'rounds', 1, 100, 3),
    run,
    svg: str(values, 'svg'),
    title: str(values, 'title'),
    json: values.json === true,
  };
}
