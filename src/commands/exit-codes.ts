// Process exit codes, one meaning each, so scripts and supervisors can act on them.

/** Clean run, including a stop by SIGINT/SIGTERM (drained or not). */
export const EXIT_OK = 0;
/** Runtime failure: an address in use, a demo backend port busy, the engine failing. */
export const EXIT_RUNTIME = 1;
/** The invocation or the config is wrong: unknown command or flag, invalid config. */
export const EXIT_USAGE = 2;
