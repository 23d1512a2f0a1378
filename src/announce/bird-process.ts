// The BIRD that Fulcrum owns (announce.bird.run: true): started in the
// foreground with its own config, control socket and pid file, in its own
// session (a Ctrl-C on Fulcrum's terminal does not reach it), under a small
// sh watchdog that holds a pipe from Fulcrum: when Fulcrum exits for any
// reason, SIGKILL included, the pipe closes and the watchdog stops BIRD, so a
// dead Fulcrum never leaves its routes announced.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../logger.js';
import { BirdError } from '../errors.js';
import { birdc } from './birdc.js';

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
    return this.#running ? this.#child?.pid : undefined;
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
    const child = spawn('sh', ['-c', WATCHDOG, bird, config, socket, `${socket}.pid`], {
      detached: true,
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    this.#child = child;
    this.#running = true;
    child.stderr!.setEncoding('utf8');
    let partial = '';
    child.stderr!.on('data', (chunk: string) => {
      partial += chunk;
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        if (line.trim() === '') continue;
        this.#lastLine = line.trim();
        logger.debug({ bird: this.#lastLine }, 'bird');
      }
    });
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
    if (child === undefined) return;
    child.stdin?.end();
    const stopped = await Promise.race([this.#exited.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)]);
    if (!stopped && child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL'); // the watchdog's process group: it and BIRD
      } catch {
        // already gone
      }
      await this.#exited;
    }
    this.#child = undefined;
  }
}

/** Write the include file for an existing BIRD (announce.bird.run: false). */
export function writeIncludeFile(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text, { mode: 0o644 });
}
