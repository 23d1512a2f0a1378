// How many TCP connections the process can hold, from its file descriptor
// limit (RLIMIT_NOFILE; Node raised the soft limit to the hard one at start),
// as HAProxy derives maxconn from it. The data plane stops accepting at this
// budget (native/engine/connection_budget.h), so clients wait in the kernel's
// listen backlog instead of being accepted and then closed for want of a
// descriptor, and what is kept back stays available to the rest:
//
//   reserve = BASE_RESERVE          Node and libuv (stdio, epoll, the thread pool's
//                                   pipes, the config and token files read on reload;
//                                   about 30 at start), a quarter of a limit under 256
//           + 2 per worker          each worker's epoll and eventfd
//           + services x workers    one SO_REUSEPORT listener per service per worker
//           + admin                 the admin API's connections (admin.max_connections,
//                                   at most fdLimit / 32, and the server is capped to it)
//           + checks + CHECK_SLACK  one socket per backend with an active check, and
//                                   backends a reload may add
//   maxConnections = (fdLimit - reserve) / 2.5
//
// A connection costs 2.5 descriptors: its two sockets, and pipes for a
// quarter of the connections at once (HAProxy's maxpipes = maxconn / 4), two
// descriptors each: a pipe holds bytes a destination could not take yet,
// mostly in bulk transfers. The workers' pools of empty pipes are capped to
// that allowance too. UDP flows (one socket each) are not in the budget: a
// flow that cannot get a socket is dropped and counted.
import { readFileSync } from 'node:fs';
import type { FulcrumConfig } from '../config/types.js';

export const BASE_RESERVE = 64;
export const CHECK_SLACK = 16;
/** Descriptors per connection: two sockets, and half a pipe (two fds) on average. */
export const FDS_PER_CONNECTION = 2.5;

export interface ConnectionBudget {
  /** RLIMIT_NOFILE (soft) of this process. */
  fdLimit: number;
  /** Descriptors kept back from connections (see the header). */
  reserve: number;
  /** Of the reserve, the admin API's connections: the admin server accepts no more. */
  adminConnections: number;
  /** TCP connections open at once over every worker; accepting pauses there. */
  maxConnections: number;
}

/** The soft RLIMIT_NOFILE of this process (Linux: /proc/self/limits); undefined when unlimited or unknown. */
export function readFdLimit(file = '/proc/self/limits'): number | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const match = /^Max open files\s+(\S+)/m.exec(text);
  const soft = match === null ? Number.NaN : Number(match[1]);
  return Number.isSafeInteger(soft) && soft > 0 ? soft : undefined;
}

/** The budget for `config` run by `workers` workers under `fdLimit` descriptors. */
export function connectionBudget(fdLimit: number, config: Pick<FulcrumConfig, 'services' | 'admin'>, workers: number): ConnectionBudget {
  const adminConnections = Math.min(config.admin.maxConnections, Math.max(16, Math.floor(fdLimit / 32)));
  const checks = config.services.reduce((n, s) => n + s.backends.filter((b) => b.healthCheck !== undefined).length, 0);
  const base = Math.min(BASE_RESERVE, Math.floor(fdLimit / 4));
  const reserve = base + 2 * workers + config.services.length * workers + adminConnections + checks + CHECK_SLACK;
  // At least one connection, so a tiny limit still serves (and says why it is slow).
  const maxConnections = Math.max(1, Math.floor((fdLimit - reserve) / FDS_PER_CONNECTION));
  return { fdLimit, reserve, adminConnections, maxConnections };
}
