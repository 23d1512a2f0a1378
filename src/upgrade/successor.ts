// The old side of an upgrade (`fulcrum upgrade`, SIGUSR2): start the new
// Fulcrum from the installed CLI with the same arguments, hand it every
// listening socket (engine listeners, admin API) over a unix socket with
// SCM_RIGHTS, and wait until it says it is ready. The sockets are shared, not
// moved: both processes accept on them until this one stops, so nothing is
// refused meanwhile and a connection queued in a socket's backlog is accepted
// by whichever process gets to it first.
//
// Why hand over every per-worker socket instead of one (letting the new
// process bind the rest into the SO_REUSEPORT group): each socket of the
// group has its own accept queue, and the kernel hashes new connections to
// all of them. A socket only this process held would be destroyed with its
// queue, and the clients waiting in it reset, when this process closes it.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Engine } from '../engine/engine.js';
import { loadNative } from '../engine/native.js';
import type { Logger } from '../logger.js';
import { parseMessage, UPGRADE_FD_ENV, type SocketManifest } from './protocol.js';

/** How long the new process may take to become ready (start, bind nothing, first health checks). */
export const READY_TIMEOUT_MS = 60_000;
const POLL_MS = 20;
/** How long an exit status is waited for once the new process closed its end. */
const EXIT_WAIT_MS = 2_000;

export interface SuccessorOptions {
  engine: Engine;
  /** The admin API's listening socket and its address, when it listens. */
  admin?: { fd: number; listen: string } | undefined;
  logger: Logger;
  readyTimeoutMs?: number;
  /** The command to start; default: this node and CLI script with this process's arguments. */
  command?: { file: string; args: string[] };
}

export class UpgradeFailed extends Error {}

/**
 * Start the new Fulcrum and hand it the sockets. Resolves with its pid once it
 * is ready; rejects with UpgradeFailed (the reason) when it could not start,
 * exited, said it failed, or was not ready in time. In every failure the new
 * process is gone (stopped by SIGTERM when it still ran) and this one keeps
 * serving with its sockets untouched.
 */
export async function startSuccessor(options: SuccessorOptions): Promise<number> {
  const fdPassing = loadNative().fdPassing;
  const listeners = options.engine.listenerFds();
  const fds = listeners.flatMap((l) => l.fds);
  const manifest: SocketManifest = { type: 'sockets', listeners: listeners.map((l) => ({ key: l.key, count: l.fds.length })) };
  if (options.admin) {
    manifest.admin = { listen: options.admin.listen };
    fds.push(options.admin.fd);
  }
  const command = options.command ?? { file: process.execPath, args: [...process.execArgv, process.argv[1]!, ...process.argv.slice(2)] };
  const [ours, theirs] = fdPassing.socketPair();
  let child: ChildProcess;
  try {
    child = spawn(command.file, command.args, {
      // The new process logs where this one does (the journal under systemd).
      stdio: ['inherit', 'inherit', 'inherit', theirs],
      env: { ...process.env, [UPGRADE_FD_ENV]: '3' },
    });
  } catch (err) {
    fdPassing.close(ours);
    fdPassing.close(theirs);
    throw new UpgradeFailed(`cannot start the new process: ${(err as Error).message}`);
  }
  // The child has its copy: ours would keep the pair open after it exits.
  fdPassing.close(theirs);
  const pid = child.pid;
  let exited: string | undefined;
  let spawnError: string | undefined;
  child.once('error', (err) => (spawnError = err.message));
  child.once('exit', (code, signal) => (exited = signal ? `killed by ${signal}` : `exited with code ${code}`));
  options.logger.info({ newPid: pid, command: [command.file, ...command.args].join(' ') }, 'upgrade: new process started, handing over the sockets');

  const giveUp = (reason: string): never => {
    fdPassing.close(ours);
    // Our child: stopped by its pid (it drains what it accepted, as on SIGTERM).
    if (exited === undefined && pid !== undefined) child.kill('SIGTERM');
    throw new UpgradeFailed(reason);
  };
  try {
    if (pid === undefined) {
      // spawn() reports ENOENT and the like by an 'error' event, a turn later.
      await new Promise((resolve) => setImmediate(resolve));
      giveUp(`cannot start the new process: ${spawnError ?? 'no pid'}`);
    }
    for (let first = 0, part = 0; first < fds.length || part === 0; first += fdPassing.maxFds, part++) {
      const text = part === 0 ? JSON.stringify(manifest) : JSON.stringify({ type: 'more' });
      fdPassing.send(ours, text, fds.slice(first, first + fdPassing.maxFds));
    }
  } catch (err) {
    if (err instanceof UpgradeFailed) throw err;
    giveUp(`cannot hand the sockets over: ${(err as Error).message}`);
  }

  const deadline = Date.now() + (options.readyTimeoutMs ?? READY_TIMEOUT_MS);
  for (;;) {
    let message: { text: string; fds: number[] } | null;
    try {
      message = fdPassing.receive(ours, 0);
    } catch (err) {
      giveUp(`lost the new process: ${(err as Error).message}`);
      throw err;
    }
    if (message !== null) {
      for (const fd of message.fds) fdPassing.close(fd);
      const parsed = parseMessage(message.text);
      if (parsed?.type === 'ready') {
        fdPassing.close(ours);
        // It outlives us: nothing of it keeps this process's event loop alive.
        child.unref();
        return pid!;
      }
      if (parsed?.type === 'failed') giveUp(`the new process failed: ${String(parsed.reason)}`);
      if (message.text === '') {
        // Its socket closes as it exits: wait a moment for the exit status, the better reason.
        for (let waited = 0; exited === undefined && waited < EXIT_WAIT_MS; waited += POLL_MS) {
          await new Promise((resolve) => setTimeout(resolve, POLL_MS));
        }
        giveUp(`the new process ${exited ?? 'closed the upgrade socket'} before it was ready (its log says why)`);
      }
    }
    if (exited !== undefined) giveUp(`the new process ${exited} before it was ready (its log says why)`);
    if (Date.now() >= deadline) giveUp(`the new process was not ready within ${Math.round((options.readyTimeoutMs ?? READY_TIMEOUT_MS) / 1000)} s`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
