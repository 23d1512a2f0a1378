// Command-line values shared by the bench scripts: bounded integers and the
// list of targets to compare. Each throws an Error naming the option, which
// the scripts turn into their usage message.

/** `text` as an integer in lo..hi, or an Error naming `--name`. */
export function intArg(name, text, lo, hi) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < lo || n > hi) throw new Error(`--${name}: expected an integer ${lo}..${hi}, got '${text}'`);
  return n;
}

/** The targets named in a comma-separated `text`, in the canonical order of `all`. */
export function targetsArg(text, all) {
  const asked = text.split(',').map((s) => s.trim());
  for (const t of asked) if (!all.includes(t)) throw new Error(`--targets: expected some of ${all.join(',')}, got '${t}'`);
  return all.filter((t) => asked.includes(t));
}

/** The options every interleaved benchmark takes, for parseArgs: --duration S, --rounds N, --proxy-cpu P, --quick, --write. */
export const RUN_OPTIONS = {
  duration: { type: 'string' },
  rounds: { type: 'string' },
  'proxy-cpu': { type: 'string', default: '50' },
  quick: { type: 'boolean', default: false },
  write: { type: 'boolean', default: false },
};

/**
 * RUN_OPTIONS' values, checked: the benchmark's own default `duration` (s)
 * and `rounds` unless given (--quick: 1 round of 2 s); --proxy-cpu up to all
 * of the proxy's `proxyThreads` cores.
 */
export function runArgs(values, { duration, rounds, proxyThreads }) {
  return {
    duration: intArg('duration', values.duration ?? (values.quick ? '2' : String(duration)), 1, 600),
    rounds: intArg('rounds', values.rounds ?? (values.quick ? '1' : String(rounds)), 1, 100),
    proxyCpu: intArg('proxy-cpu', values['proxy-cpu'], 0, 100 * proxyThreads),
    quick: values.quick,
    write: values.write,
  };
}
