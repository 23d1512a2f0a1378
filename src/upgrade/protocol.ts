// The messages of an upgrade, over a SOCK_SEQPACKET unix socket pair whose
// second end the new Fulcrum inherits as fd 3 (env FULCRUM_UPGRADE_FD):
//
//   old → new   {type:'sockets', listeners:[{key, count}], admin?:{listen},
//                companions?:{ha?, announce?, sync?}, sessions?: true}
//               + the descriptors, in that order (split over several
//               messages of at most maxFds, the rest carry {type:'more'})
//   old → new   {type:'sessions', records}  (sync:) the old one's session
//               table, then {type:'sessions-end'}; the new one reads it all
//               before its engine takes the listeners (inheritance.ts)
//   both ways   {type:'sessions', records}  sticky entries and UDP flows each
//               process makes while both serve, so neither moves a client
//   new → old   {type:'ready', pid, adopts:{ha, announce, sync}}
//                                              every listener adopted, admin
//                                              API up: the old one may stop;
//                                              `adopts`: the companions it
//                                              takes over (its config has them
//                                              and can run on the old state)
//               {type:'failed', reason}        the new one gives up (and exits)
//   old → new   {type:'handover', ha?, announce?, sync?, fds:[names]}
//               + the descriptors named in `fds` (the sync socket, BIRD's
//               watchdog pipes): the state of each companion asked for in
//               `adopts` that the old one had, frozen the moment it is sent
//
// The old process keeps every socket open until 'ready', so no connection
// waiting in an accept queue is lost whichever way the upgrade ends.
//
// Why VRRP state travels as data and not as the raw socket: raw IP sockets
// each get a copy of every VRRP packet, so the new process opens its own
// (before 'ready': a failure there fails the upgrade cleanly) and nothing is
// lost between the two; what it lacks is the state machine's state, which
// is small. The old one freezes its machine when it sends the handover (one
// last advert, then silence: no priority 0, the VIPs stay), the new one
// resumes it at once: the gap in adverts is the time a message takes from
// one process to the other, far below the peer's Master_Down_Interval.
//
// Why BIRD is handed over and not restarted with graceful restart: BIRD keeps
// running, sessions and routes untouched, and only its watchdog's pipes
// change hands (bird-process.ts): no BGP session flap, nothing for the
// router to support, and a new process that dies still takes BIRD with it.
import type { SessionRecord } from '../engine/sync-records.js';

export const UPGRADE_FD_ENV = 'FULCRUM_UPGRADE_FD';

/** What runs beside the engine and can be handed over. */
export interface CompanionSet {
  ha?: boolean;
  announce?: boolean;
  sync?: boolean;
}

export interface SocketManifest {
  type: 'sockets';
  /** Engine listeners by listener key ("tcp 127.0.0.1:80"), `count` fds each. */
  listeners: { key: string; count: number }[];
  /** The admin API's listening socket and the address it was bound to. */
  admin?: { listen: string };
  /** The companions the old process runs (what it could hand over once the new one is ready). */
  companions?: CompanionSet;
  /** The old process's session table follows ('sessions' ... 'sessions-end'). */
  sessions?: true;
}

export type SuccessorMessage = { type: 'ready'; pid: number; adopts?: CompanionSet } | { type: 'failed'; reason: string };

/** A VRRP instance's state at the handover (src/ha/instance.ts). */
export interface HaHandover {
  /** Where it must match the new config to be taken over. */
  interface: string;
  vrid: number;
  vips: string[];
  state: 'master' | 'backup';
  /** Backup: the Master last heard and its advert interval. */
  masterAddress?: string;
  masterAdverIntervalMs: number;
  /** Backup: when the Master_Down_Timer would fire (epoch ms). */
  masterDownAt?: number;
  /** Backup with preempt_delay: since when a lower-priority Master has been seen (epoch ms). */
  lowerMasterSince?: number;
  transitions: number;
}

/** The owned BIRD's watchdog (src/announce/bird-process.ts): its pid, and its pipes as fds of the handover. */
export interface BirdHandover {
  pid: number;
}

/** An announcement's state at the handover (src/announce/announcer.ts). */
export interface AnnounceHandover {
  /** Present when the old process ran BIRD itself; its fds are 'birdStdin' and 'birdStderr'. */
  bird?: BirdHandover;
  vips: Array<{ vip: string; state: 'announced' | 'withdrawn'; reason: string; since: number; applied?: 'announced' | 'withdrawn' }>;
  /** VIPs the old process added to the interface (the new one removes them at its stop). */
  addedAddresses: string[];
  /** Withdrawn by the admin API (POST /api/announce/drain) until resumed: the operator's word goes over too. */
  drained: boolean;
}

/** Session sync at the handover: its socket is the 'sync' fd; the new process goes on with the same
 * incarnation and the next sequence, so peers see one sender that never restarted. */
export interface SyncHandover {
  listen: string;
  incarnation: string;
  sequence: string;
}

export interface HandoverMessage {
  type: 'handover';
  ha?: HaHandover;
  announce?: AnnounceHandover;
  sync?: SyncHandover;
  /** The names of the descriptors that come with the message, in order. */
  fds: string[];
}

/** A session record as JSON: [kind (1 sticky, 2 udp), service, backend, ageMs, key]. */
export type WireSession = [number, string, string, number, string];

export function encodeSessions(records: readonly SessionRecord[]): WireSession[] {
  return records.map((r) => [r.kind === 'sticky' ? 1 : 2, r.service, r.backend, r.ageMs, r.key.toString()]);
}

/** Decode what encodeSessions made; malformed entries are skipped. */
export function decodeSessions(value: unknown): SessionRecord[] {
  if (!Array.isArray(value)) return [];
  const records: SessionRecord[] = [];
  for (const entry of value as unknown[]) {
    if (!Array.isArray(entry) || entry.length !== 5) continue;
    const [kind, service, backend, ageMs, key] = entry as unknown[];
    if ((kind !== 1 && kind !== 2) || typeof service !== 'string' || typeof backend !== 'string' || typeof ageMs !== 'number' || typeof key !== 'string' || !/^\d+$/.test(key)) continue;
    records.push({ kind: kind === 1 ? 'sticky' : 'udp', service, backend, ageMs, key: BigInt(key) });
  }
  return records;
}

/** A 'sessions' message stays below this many bytes of JSON (a message holds at most 64 KiB). */
const SESSIONS_MESSAGE_BYTES = 60_000;

/** `records` as 'sessions' messages, each within one upgrade-socket message. */
export function sessionMessages(records: readonly SessionRecord[]): Array<{ type: 'sessions'; records: WireSession[] }> {
  const messages: Array<{ type: 'sessions'; records: WireSession[] }> = [];
  let current: WireSession[] = [];
  let bytes = 0;
  for (const entry of encodeSessions(records)) {
    const size = JSON.stringify(entry).length + 1;
    if (current.length > 0 && bytes + size > SESSIONS_MESSAGE_BYTES) {
      messages.push({ type: 'sessions', records: current });
      current = [];
      bytes = 0;
    }
    current.push(entry);
    bytes += size;
  }
  if (current.length > 0) messages.push({ type: 'sessions', records: current });
  return messages;
}

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
