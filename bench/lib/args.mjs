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
