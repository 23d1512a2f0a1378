// Bounded waits on state that changes as events arrive (socket data, log
// lines, process exit). The owner calls notify() after every change; each
// pending wait re-checks its condition then. One implementation for every
// helper, so every wait in the suite has the same timeout and error shape.

export class Waiters {
  readonly #checks = new Set<() => void>();

  /** Re-check every pending wait; call after each change of the owner's state. */
  notify(): void {
    for (const check of [...this.#checks]) check();
  }

  /**
   * Resolve with the first value other than undefined that `done()` returns.
   * Reject with `failed()`'s error when it returns one first (the connection
   * ended, the process exited), or after `timeoutMs`.
   * `describe` shapes every rejection (to append output collected so far).
   */
  wait<T>(
    what: string,
    done: () => T | undefined,
    timeoutMs: number,
    failed: () => string | undefined = () => undefined,
    describe: (message: string) => Error = (message) => new Error(message),
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      const finish = (error: Error | undefined, value?: T): void => {
        clearTimeout(timer);
        this.#checks.delete(check);
        if (error) reject(error);
        else resolve(value as T);
      };
      const check = (): void => {
        const value = done();
        if (value !== undefined) return finish(undefined, value);
        const failure = failed();
        if (failure !== undefined) finish(describe(`${failure} before ${what}`));
      };
      const timer = setTimeout(() => finish(describe(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
      this.#checks.add(check);
      check();
    });
  }
}
