// Child processes for benchmarks: start, run with a deadline, stop by PID.
//
// Contract: every process a benchmark starts goes through this module, so
// `installCleanup()` can kill exactly those PIDs (and no others) when the
// benchmark is interrupted or exits early. Nothing here kills by name.

import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** PID -> ChildProcess for every child still running. */
const live = new Map();

/**
 * `cmd args` as run in network namespace `netns` (`ip netns exec` replaces
 * itself with the command: the PID is the command's), or unchanged without one.
 */
function inNetns(netns, cmd, args) {
  return netns ? ['ip', ['netns', 'exec', netns, cmd, ...args]] : [cmd, args];
}

/** Keep this much of a long-running process's output, for error reports. */
const OUTPUT_TAIL = 64 * 1024;

/**
 * Start a long-running process (a server, a proxy). Returns a handle:
 * `{ name, pid, child, exited, exitCode, signal, spawnError, output(), exitPromise }`.
 * `pid` is undefined when the spawn itself failed (`spawnError` says why).
 * `netns`: run it in that network namespace.
 */
export function startProcess(name, cmd, args, { cwd, env, netns } = {}) {
  [cmd, args] = inNetns(netns, cmd, args);
  const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const append = (chunk) => {
    tail = (tail + chunk.toString()).slice(-OUTPUT_TAIL);
  };
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  const handle = {
    name,
    pid: child.pid,
    child,
    exited: false,
    exitCode: null,
    signal: null,
    spawnError: null,
    output: () => tail,
    exitPromise: null,
  };
  handle.exitPromise = new Promise((resolve) => {
    child.once('error', (err) => {
      handle.spawnError = err;
      handle.exited = true;
      if (child.pid) live.delete(child.pid);
      resolve();
    });
    child.once('exit', (code, signal) => {
      handle.exited = true;
      handle.exitCode = code;
      handle.signal = signal;
      live.delete(child.pid);
      resolve();
    });
  });
  if (child.pid) live.set(child.pid, child);
  return handle;
}

/** Resolves true if `promise` settled within `ms`, false otherwise. */
function within(promise, ms) {
  let timer;
  return Promise.race([
    promise.then(() => true),
    new Promise((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Stop a process started by `startProcess`: SIGTERM, then SIGKILL after
 * `graceMs`. Resolves once it has exited (or after SIGKILL + 2 s, whichever first).
 */
export async function stopProcess(handle, graceMs = 5000) {
  if (!handle || handle.exited || !handle.pid) return;
  signalPid(handle.pid, 'SIGTERM');
  if (await within(handle.exitPromise, graceMs)) return;
  signalPid(handle.pid, 'SIGKILL');
  await within(handle.exitPromise, 2000);
}

/** Send a signal to one PID; a process that is already gone is not an error. */
function signalPid(pid, signal) {
  try {
    process.kill(pid, signal);
  } catch (err) {
    if (err.code !== 'ESRCH') throw err;
  }
}

/**
 * Run a command to completion with a hard deadline (SIGKILL at `timeoutMs`).
 * Resolves `{ code, signal, stdout, stderr, timedOut, error }`; never rejects.
 * `netns`: run it in that network namespace.
 */
export function runCommand(cmd, args, { timeoutMs = 30000, cwd, env, netns } = {}) {
  [cmd, args] = inNetns(netns, cmd, args);
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid) live.set(child.pid, child);
    const out = [];
    const err = [];
    child.stdout.on('data', (b) => out.push(b));
    child.stderr.on('data', (b) => err.push(b));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid) signalPid(child.pid, 'SIGKILL');
    }, timeoutMs);
    const finish = (code, signal, error) => {
      clearTimeout(timer);
      if (child.pid) live.delete(child.pid);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
        timedOut,
        error,
      });
    };
    child.once('error', (e) => finish(null, null, e));
    child.once('close', (code, signal) => finish(code, signal, null));
  });
}

/**
 * `runCommand` that also reports the CPU the command used (user + system
 * seconds of it and its children, from bash's `times`) as `cpuSeconds`
 * (NaN when it could not be read).
 */
export async function runCommandWithCpu(cmd, args, options) {
  const r = await runCommand('bash', ['-c', '"$@"; status=$?; times >&2; exit $status', 'bash', cmd, ...args], options);
  // `times` prints the shell's own times, then its children's: "0m1.234s 0m0.567s".
  const lines = r.stderr.trimEnd().split('\n');
  const children = /^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/.exec(lines.at(-1) ?? '');
  const cpuSeconds = children ? Number(children[1]) * 60 + Number(children[2]) + Number(children[3]) * 60 + Number(children[4]) : Number.NaN;
  return { ...r, stderr: children ? lines.slice(0, -2).join('\n') : r.stderr, cpuSeconds };
}

/** First line of `cmd args` (e.g. a version banner), or null when it cannot run. Synchronous, 5 s bound. */
export function firstLine(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000 });
  if (r.error || r.status === null) return null;
  const text = `${r.stdout}\n${r.stderr}`.trim();
  return text ? text.split('\n')[0].trim() : null;
}

/** Absolute path of an executable on PATH, or null. */
export function which(cmd) {
  const r = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { encoding: 'utf8', timeout: 5000 });
  const path = r.status === 0 ? r.stdout.trim() : '';
  return path || null;
}

let cleanupInstalled = false;
/** Extra synchronous work for an interrupted run (e.g. removing a temp dir), see `onInterrupt`. */
const interruptHooks = [];

/** Run `fn` (synchronous) if the benchmark is stopped by SIGINT/SIGTERM, after its children are killed. */
export function onInterrupt(fn) {
  interruptHooks.push(fn);
}

/**
 * On SIGINT/SIGTERM or process exit, SIGKILL every child this module started
 * that is still running. Call once, at the start of a benchmark.
 */
export function installCleanup() {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  const killAll = () => {
    for (const pid of live.keys()) signalPid(pid, 'SIGKILL');
    live.clear();
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => {
      process.stderr.write(`\n${sig}: stopping benchmark processes\n`);
      killAll();
      for (const fn of interruptHooks) {
        try {
          fn();
        } catch {
          // best effort: we are exiting anyway
        }
      }
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

/**
 * `pid` and its direct children (nginx's and HAProxy's worker processes), for
 * CPU accounting and cgroup moves; [] for no pid.
 */
export function withChildren(pid) {
  if (!pid) return [];
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    return [pid, ...children];
  } catch {
    return [pid];
  }
}

/** Sleep for `ms` milliseconds. */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
