// How a connection ended (its connection record's `termination`, the
// `termination` label of fulcrum_connections_ended_total), in words for the
// status page's tooltips and `fulcrum status`: the README's table, "Connection
// log", in short. The names themselves come from the addon
// (connectionStatsLayout.terminations); a name without words here is shown bare.
export const TERMINATION_MEANINGS: Readonly<Record<string, string>> = {
  client_closed: 'the client sent its FIN first (a normal end)',
  backend_closed: 'the backend sent its FIN first (a normal end)',
  client_reset: 'the client reset or its socket failed',
  backend_reset: 'the backend reset or its socket failed',
  idle_timeout: 'nothing moved either way for timeouts.idle',
  connect_failed: 'every connect try was refused or unreachable',
  connect_timeout: 'every connect try failed, the last by timeouts.connect',
  no_backend: 'no backend was up',
  queue_full: 'every backend at max_connections and the queue full',
  queue_timeout: 'waited queue.timeout for a backend with room',
  denied: 'refused by allow/deny',
  client_limit: 'over a client_limits limit',
  proxy_missing: 'no PROXY header',
  proxy_malformed: 'a malformed PROXY header',
  proxy_timeout: 'no complete PROXY header in time',
  drain: "closed by its drained backend's drain_timeout",
  maint: 'closed by an operator (shutdown-sessions) while its backend was in maintenance',
  removed: 'its backend was removed by a reload, and its drain_timeout passed',
  shutdown: 'Fulcrum stopped',
  local_error: 'Fulcrum ran out of a resource',
  killed: 'closed by an operator (shutdown-sessions)',
  responses_done: 'UDP: ended after udp.responses replies',
  evicted: 'UDP: ended to make room under max_flows',
  backend_moved: 'UDP: its backend went away and no other could take it',
};

/** "120 client_closed, 2 backend_reset" (the states with a count, most first); "none yet". */
export function endedText(ended: Readonly<Record<string, number>>): string {
  const parts = Object.entries(ended).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  return parts.length === 0 ? 'none yet' : parts.map(([name, n]) => `${n} ${name}`).join(', ');
}
