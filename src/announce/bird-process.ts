// The BIRD that Fulcrum owns (announce.bird.run: true): started in the
// foreground with its own config, control socket and pid file, in its own
// session (a Ctrl-C on Fulcrum's terminal does not reach it), under a small
// sh watchdog that holds a pipe from Fulcrum: when Fulcrum exits for any
// reason, SIGKILL included, the pipe closes and the watchdog stops BIRD, so a
// dead Fulcrum never leaves its routes announced.
//
// Upgrade (src/upgrade/): BIRD is handed over, never restarted. The old
// process passes the watchdog's two pipes (our end of its stdin, which keeps
// it waiting, and of its stderr, which BIRD logs to) to the new one with
// SCM_RIGHTS and closes its own copies: the stdin pipe never sees end of file
// (a copy is open all along), so the watchdog and BIRD go on, sessions and
// routes untouched; from then on the new process holds the pipe whose closing
// stops BIRD, and reads its log (a log line into a pipe nobody reads would
// kill BIRD with SIGPIPE). The new process is not the watchdog's parent: it
// learns that BIRD is gone from the end of the stderr pipe, which closes only
// when the watchdog and BIRD have both exited.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../logger.js';
import { BirdError } from '../errors.js';
import { birdc } from './birdc.js';
import { loadNative } from '../engine/native.js';
import type { BirdHandover } from '../upgrade/protocol.js';

/** The watchdog's pipes as a handover carries them (fds of this process once received). */
export interface BirdPipes {
  pid: number;
  stdinFd: number;
  stderrFd: number;
}

/** The fd under a pipe stream of a child process (node keeps the libuv handle on `_handle`). */
function streamFd(stream: unknown): number | undefined {
  const fd = (stream as { _handle?: { fd?: unknown } } | null)?._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** How long BIRD may take to open its control socket. */
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

// $0 bird, $1 config, $2 socket, $3 pid file. BIRD gets /dev/null as stdin;
// the watchdog reads the pipe until it closes, then stops BIRD and waits.
const WATCHDOG = 'trap "" INT HUP; "$0" -f -c "$1" -s "$2" -P "$3" </dev/null & b=$!; ' +
  'trap \'kill -TERM $b 2>/dev/null\' TERM; while read -r _; do :; done; kill -TERM $b 2>/dev/null; wait $b';

export interface BirdProcessOptions {
  bird: string;
  birdc: string;
  config: string;
  socket: string;
  logger: Logger;
}

export class BirdProcess {
  readonly #options: BirdProcessOptions;
  #child: ChildProcess | undefined;
  /** Taken over from the previous process (upgrade): the watchdog's pid, our stdin pipe fd, its stderr reader. */
  #adopted: { pid: number; stdinFd: number | undefined; stderr: Socket } | undefined;
  #exited: Promise<void> = Promise.resolve();
  #running = false;
  /** BIRD's (or the shell's) last line on stderr, for a start that fails. */
  #lastLine = '';

  constructor(options: BirdProcessOptions) {
    this.#options = options;
  }

  get running(): boolean {
    return this.#running;
  }

  get pid(): number | undefined {
    return this.#running ? (this.#child?.pid ?? this.#adopted?.pid) : undefined;
  }

  /** BIRD's stderr: its log lines at debug, the last kept for a failed start. */
  #readLog(stream: Readable): void {
    stream.setEncoding('utf8');
    let partial = '';
    stream.on('data', (chunk: string) => {
      partial += chunk;
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        if (line.trim() === '') continue;
        this.#lastLine = line.trim();
        this.#options.logger.debug({ bird: this.#lastLine }, 'bird');
      }
    });
  }

  /**
   * Upgrade, the old process: the watchdog's pid and our ends of its pipes,
   * to be sent to the new process; undefined when BIRD does not run. Call
   * release() once they are sent.
   */
  handOver(): { handover: BirdHandover; fds: [number, number] } | undefined {
    if (!this.#running) return undefined;
    const pid = this.#child?.pid ?? this.#adopted?.pid;
    const stdinFd = this.#child ? streamFd(this.#child.stdin) : this.#adopted?.stdinFd;
    const stderrFd = this.#child ? streamFd(this.#child.stderr) : streamFd(this.#adopted?.stderr);
    if (pid === undefined || stdinFd === undefined || stderrFd === undefined) return undefined;
    return { handover: { pid }, fds: [stdinFd, stderrFd] };
  }

  /** After handOver(): close our ends of the pipes and forget BIRD (the new process has them; BIRD runs on). */
  release(): void {
    const child = this.#child;
    const adopted = this.#adopted;
    this.#child = undefined;
    this.#adopted = undefined;
    this.#running = false;
    if (child !== undefined) {
      child.removeAllListeners('exit');
      child.stderr?.removeAllListeners('data');
      child.stdin?.destroy();
      child.stderr?.destroy();
      child.unref();
    }
    if (adopted !== undefined) {
      adopted.stderr.removeAllListeners();
      adopted.stderr.destroy();
      if (adopted.stdinFd !== undefined) loadNative().fdPassing.close(adopted.stdinFd);
    }
    this.#exited = Promise.resolve();
  }

  /**
   * Upgrade, the new process: take over the BIRD the previous process ran
   * (its watchdog's pipes, received with the handover). Resolves once BIRD
   * answers on its control socket; rejects (BirdError) when it does not, with
   * the pipes closed (BIRD then stops, and the caller starts its own).
   */
  async adopt(pipes: BirdPipes): Promise<void> {
    const { birdc: client, socket, logger } = this.#options;
    const stderr = new Socket({ fd: pipes.stderrFd, readable: true, writable: false });
    this.#adopted = { pid: pipes.pid, stdinFd: pipes.stdinFd, stderr };
    this.#running = true;
    this.#readLog(stderr);
    this.#exited = new Promise((resolve) => {
      const gone = (): void => {
        const adopted = this.#adopted;
        if (!this.#running || adopted?.stderr !== stderr) return resolve();
        this.#running = false;
        // BIRD and its watchdog are gone: our end of its stdin pipe has nothing left to hold.
        if (adopted.stdinFd !== undefined) loadNative().fdPassing.close(adopted.stdinFd);
        adopted.stdinFd = undefined;
        logger.info({ pid: pipes.pid }, 'bird exited');
        resolve();
      };
      stderr.once('end', gone);
      stderr.once('close', gone);
      stderr.on('error', () => undefined);
    });
    const status = await birdc(client, socket, ['show', 'status']);
    if (!status.ok) {
      await this.stop();
      throw new BirdError(`the BIRD handed over (watchdog pid ${pipes.pid}) does not answer on ${socket}: ${status.output}`);
    }
    logger.info({ pid: pipes.pid, socket }, 'bird taken over from the previous process');
  }

  /** Write the config and start BIRD; resolves once its control socket answers. */
  async start(configText: string): Promise<void> {
    const { bird, birdc: client, config, socket, logger } = this.#options;
    mkdirSync(dirname(config), { recursive: true });
    mkdirSync(dirname(socket), { recursive: true });
    writeFileSync(config, configText, { mode: 0o600 });
    // A BIRD left on our socket (a predecessor's watchdog that never ran) is asked to go.
    if ((await birdc(client, socket, ['show', 'status'])).ok) {
      logger.warn({ socket }, 'a BIRD already answers on our control socket: shutting it down');
      await birdc(client, socket, ['down']);
      await sleep(500);
    }
    // One taken over from the previous process that died is replaced by our own child.
    this.#adopted?.stderr.destroy();
    this.#adopted = undefined;
    const child = spawn('sh', ['-c', WATCHDOG, bird, config, socket, `${socket}.pid`], {
      detached: true,
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    this.#child = child;
    this.#running = true;
    this.#readLog(child.stderr!);
    this.#exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.#running = false;
        logger.info({ code, signal }, 'bird exited');
        resolve();
      });
      child.on('error', (err) => {
        this.#running = false;
        logger.error({ err }, 'cannot run bird');
        resolve();
      });
    });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (!this.#running) {
        await sleep(20); // its last words
        throw new BirdError(`bird exited at start: ${this.#lastLine || 'no message'} (check with: ${bird} -p -c ${config})`);
      }
      if ((await birdc(client, socket, ['show', 'status'])).ok) break;
      if (Date.now() > deadline) {
        await this.stop();
        throw new BirdError(`bird did not open its control socket ${socket} within ${READY_TIMEOUT_MS}ms`);
      }
      await sleep(50);
    }
    logger.info({ pid: child.pid, config, socket }, 'bird started');
  }

  /** Stop BIRD (SIGTERM through the watchdog: it closes its sessions with a Cease). */
  async stop(): Promise<void> {
    const child = this.#child;
    const adopted = this.#adopted;
    if (child === undefined && adopted === undefined) return;
    child?.stdin?.end();
    if (adopted?.stdinFd !== undefined) {
      loadNative().fdPassing.close(adopted.stdinFd);
      adopted.stdinFd = undefined;
    }
    const stopped = await Promise.race([this.#exited.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)]);
    const pid = child?.pid ?? adopted?.pid;
    if (!stopped && pid !== undefined) {
      try {
        process.kill(-pid, 'SIGKILL'); // the watchdog's process group: it and BIRD
      } catch {
        // already gone
      }
      await Promise.race([this.#exited, sleep(STOP_TIMEOUT_MS)]);
    }
    adopted?.stderr.destroy();
    this.#child = undefined;
    this.#adopted = undefined;
  }
}

/** Write the include file for an existing BIRD (announce.bird.run: false). */
export function writeIncludeFile(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text, { mode: 0o644 });
}
