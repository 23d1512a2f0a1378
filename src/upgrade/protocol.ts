// The messages of an upgrade, over a SOCK_SEQPACKET unix socket pair whose
// second end the new Fulcrum inherits as fd 3 (env FULCRUM_UPGRADE_FD):
//
//   old → new   {type:'sockets', listeners:[{key, count}], admin?:{listen, count:1}}
//               + the descriptors, in that order (split over several
//               messages of at most maxFds, the rest carry {type:'more'})
//   new → old   {type:'ready', pid}            every listener adopted, admin
//                                              API up: the old one may stop
//               {type:'failed', reason}        the new one gives up (and exits)
//
// The old process keeps every socket open until 'ready', so no connection
// waiting in an accept queue is lost whichever way the upgrade ends.
export const UPGRADE_FD_ENV = 'FULCRUM_UPGRADE_FD';

export interface SocketManifest {
  type: 'sockets';
  /** Engine listeners by listener key ("tcp 127.0.0.1:80"), `count` fds each. */
  listeners: { key: string; count: number }[];
  /** The admin API's listening socket and the address it was bound to. */
  admin?: { listen: string };
}

export type SuccessorMessage = { type: 'ready'; pid: number } | { type: 'failed'; reason: string };

/** Parse a message text; undefined when it is not JSON with a string `type`. */
export function parseMessage(text: string): ({ type: string } & Record<string, unknown>) | undefined {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string') {
      return value as { type: string } & Record<string, unknown>;
    }
  } catch {
    // not JSON
  }
  return undefined;
}
