// The `notify` script: run on each state change with keepalived's arguments
//   SCRIPT INSTANCE <name> <MASTER|BACKUP|FAULT|STOP> <priority>
// so scripts written for keepalived work unchanged. Runs are serialized (a
// script sees the transitions in order), each bounded by a timeout; a failing
// or hanging script is logged and never blocks the state machine.
import { spawn } from 'node:child_process';
import type { Logger } from '../logger.js';

const SCRIPT_TIMEOUT_MS = 30_000;

export class NotifyRunner {
  readonly #script: string | undefined;
  readonly #instance: string;
  readonly #logger: Logger;
  #chain: Promise<void> = Promise.resolve();
  runs = 0;
  failures = 0;

  constructor(script: string | undefined, instance: string, logger: Logger) {
    this.#script = script;
    this.#instance = instance;
    this.#logger = logger;
  }

  /** Queue a run for `state`; resolves when it (and those before it) finished. */
  notify(state: 'MASTER' | 'BACKUP' | 'FAULT' | 'STOP', priority: number): Promise<void> {
    const script = this.#script;
    if (script === undefined) return this.#chain;
    const args = ['INSTANCE', this.#instance, state, String(priority)];
    this.#chain = this.#chain.then(() => this.#run(script, args));
    return this.#chain;
  }

  /** Resolves once every queued run finished. */
  idle(): Promise<void> {
    return this.#chain;
  }

  #run(script: string, args: string[]): Promise<void> {
    return new Promise((resolve) => {
      this.runs++;
      const child = spawn(script, args, { stdio: 'ignore', timeout: SCRIPT_TIMEOUT_MS, killSignal: 'SIGKILL' });
      child.on('error', (err) => {
        this.failures++;
        this.#logger.error({ err, script, args }, 'notify script could not start');
        resolve();
      });
      child.on('exit', (code, signal) => {
        if (code !== 0) {
          this.failures++;
          this.#logger.warn({ script, args, code, signal }, 'notify script failed');
        } else {
          this.#logger.debug({ script, args }, 'notify script ran');
        }
        resolve();
      });
    });
  }
}
