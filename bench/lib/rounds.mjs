// Interleaved rounds: every round measures every target, in an order rotated
// round by round, so slow drift of a noisy machine falls on all targets alike.

/** The targets of round `round` (0-based): `order` rotated left by `round`. */
export function rotation(order, round) {
  return order.map((_, i) => order[(i + round) % order.length]);
}

/**
 * When target `name`'s process (t.handle) has exited, drops it from `running`
 * for the rest of the run, says why in `skipped` and the log, and returns true.
 */
export function droppedIfExited(name, t, running, skipped, log) {
  if (!t.handle?.exited) return false;
  skipped.set(name, `process exited during the run (code ${t.handle.exitCode}, signal ${t.handle.signal})`);
  log(`  ${name}: process exited; dropped from the run`);
  running.delete(name);
  return true;
}
