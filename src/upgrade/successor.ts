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
//
// What runs beside the engine (VRRP, the BGP announcement, session sync) is
// handed over through `link` (protocol.ts): the manifest says what this
// process runs, the session table follows it, and once the new process is
// ready and says what it takes over, link.handOver() freezes those and their
// state goes over before this function returns.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Engine } from '../engine/engine.js';
import { loadNative } from '../engine/native.js';
import type { Logger } from '../logger.js';
import { UpgradeChannel, type ChannelMessage } from './channel.js';
import { UPGRADE_FD_ENV, type CompanionSet, type HandoverMessage, type SocketManifest } from './protocol.js';

/** How long the handover message may wait for room in the new process's queue. */
const HANDOVER_SEND_MS = 2_000;

/** The companions' side of an upgrade (see the header); every callback runs on the JS thread. */
export interface SuccessorLink {
  /** What this process runs that could be handed over. */
  companions: CompanionSet;
  /** The session table follows the sockets (sync:). */
  sessions: boolean;
  /** The sockets are sent: stream on `channel` from now on (the session table, then changes). */
  opened(channel: UpgradeChannel): void;
  /** A message from the new process other than ready/failed ('sessions'). */
  message(message: ChannelMessage): void;
  /** The new process is ready and takes over `adopts`: freeze those and say what goes over
   * (`sent` runs once the message and its descriptors have left). */
  handOver(adopts: CompanionSet): Promise<{ message: HandoverMessage; fds: number[]; sent: () => void }>;
  /** The upgrade failed: stop streaming (the channel is closed). */
  abandoned(): void;
}

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
  /** VRRP, BGP and session sync (absent: none runs). */
  link?: SuccessorLink | undefined;
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
  const link = options.link;
  if (link) {
    manifest.companions = link.companions;
    if (link.sessions) manifest.sessions = true;
  }
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

  let channel: UpgradeChannel | undefined;
  const giveUp = (reason: string): never => {
    if (channel !== undefined) {
      channel.close();
      link?.abandoned();
    } else fdPassing.close(ours);
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

  channel = new UpgradeChannel(ours);
  link?.opened(channel);

  const deadline = Date.now() + (options.readyTimeoutMs ?? READY_TIMEOUT_MS);
  for (;;) {
    for (let got = channel.receive(); got !== undefined; got = channel.receive()) {
      for (const fd of got.fds) fdPassing.close(fd);
      const { message } = got;
      if (message.type === 'ready') {
        const adopts = (message.adopts ?? {}) as CompanionSet;
        if (link !== undefined) {
          const handover = await link.handOver(adopts);
          channel.send(handover.message, handover.fds, handover.sent);
          await channel.drained(HANDOVER_SEND_MS);
          if (channel.pending > 0) options.logger.error('upgrade: the handover did not reach the new process in time; it starts VRRP, BGP and sync afresh');
        }
        channel.close();
        // It outlives us: nothing of it keeps this process's event loop alive.
        child.unref();
        return pid!;
      }
      if (message.type === 'failed') giveUp(`the new process failed: ${String(message.reason)}`);
      link?.message(message);
    }
    if (channel.ended) {
      // Its socket closes as it exits: wait a moment for the exit status, the better reason.
      for (let waited = 0; exited === undefined && waited < EXIT_WAIT_MS; waited += POLL_MS) {
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
      giveUp(`the new process ${exited ?? 'closed the upgrade socket'} before it was ready (its log says why)`);
    }
    if (exited !== undefined) giveUp(`the new process ${exited} before it was ready (its log says why)`);
    if (Date.now() >= deadline) giveUp(`the new process was not ready within ${Math.round((options.readyTimeoutMs ?? READY_TIMEOUT_MS) / 1000)} s`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
