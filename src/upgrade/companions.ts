// What runs beside the engine (VRRP, the BGP announcement, session sync)
// across an upgrade: the old process's side (companionLink: stream the
// session table, then freeze and hand over what the new process takes) and
// the new process's side (takeOver: resume each from the handover, or start
// it afresh when the handover lacks it). protocol.ts says why VRRP travels as
// state and BIRD as its watchdog's pipes.
import type { FulcrumConfig } from '../config/types.js';
import type { Announcer } from '../announce/announcer.js';
import { loadNative } from '../engine/native.js';
import type { HaInstance } from '../ha/instance.js';
import type { Logger } from '../logger.js';
import type { SessionLink, SessionSync } from '../sync/session-sync.js';
import type { Handover } from './inheritance.js';
import { decodeSessions, sessionMessages, type CompanionSet, type HandoverMessage } from './protocol.js';
import type { SuccessorLink } from './successor.js';

export interface Companions {
  ha?: HaInstance | undefined;
  announcer?: Announcer | undefined;
  sync?: SessionSync | undefined;
}

/**
 * The old process's side. `stopping()`: a stop began meanwhile, then nothing
 * is handed over (the companions stop as on SIGTERM and the new process
 * starts its own). `handedOver` says afterwards what went over (those are
 * frozen here and must not be stopped as on SIGTERM: no withdraw grace).
 */
export function companionLink(companions: Companions, stopping: () => boolean): { link: SuccessorLink | undefined; handedOver: () => CompanionSet } {
  const { ha, announcer, sync } = companions;
  let handed: CompanionSet = {};
  if (ha === undefined && announcer === undefined && sync === undefined) return { link: undefined, handedOver: () => handed };
  const link: SuccessorLink = {
    companions: { ha: ha !== undefined, announce: announcer !== undefined, sync: sync !== undefined },
    sessions: sync !== undefined,
    opened(channel) {
      if (sync === undefined) return;
      const sink: SessionLink = {
        records: (records) => {
          for (const message of sessionMessages(records)) channel.send(message);
        },
      };
      // Changes from now on, and the whole table (the new process reads both until 'sessions-end').
      sync.setLink(sink);
      void sync.copyTo(sink).then(() => channel.send({ type: 'sessions-end' }));
    },
    message(message) {
      if (message.type === 'sessions') sync?.fromLink(decodeSessions(message.records));
    },
    async handOver(adopts) {
      sync?.setLink(undefined);
      const message: HandoverMessage = { type: 'handover', fds: [] };
      const fds: number[] = [];
      const after: Array<() => void> = [];
      if (stopping()) return { message, fds, sent: () => undefined };
      // BGP first: it may wait for a birdc command in flight, while VRRP still advertises.
      if (adopts.announce && announcer !== undefined) {
        const taken = await announcer.handOver();
        if (taken !== undefined) {
          message.announce = taken.handover;
          if (taken.fds.length === 2) {
            message.fds.push('birdStdin', 'birdStderr');
            fds.push(...taken.fds);
          }
          after.push(taken.sent);
        }
      }
      if (adopts.sync && sync !== undefined) {
        const taken = sync.handOver();
        if (taken !== undefined) {
          message.sync = { listen: taken.listen, incarnation: String(taken.incarnation), sequence: String(taken.sequence) };
          message.fds.push('sync');
          fds.push(taken.fd);
          after.push(() => sync.stop());
        }
      }
      // VRRP last, right before the message leaves: its last advert starts the peer's timer afresh.
      if (adopts.ha && ha !== undefined) {
        const taken = ha.handOver();
        if (taken !== undefined) message.ha = taken;
      }
      handed = { ha: message.ha !== undefined, announce: message.announce !== undefined, sync: message.sync !== undefined };
      return { message, fds, sent: () => after.forEach((run) => run()) };
    },
    abandoned() {
      sync?.setLink(undefined);
    },
  };
  return { link, handedOver: () => handed };
}

/**
 * The new process's side, once it said ready: resume each companion in
 * `inherits` from `handover`, or start it as at any start when the handover
 * lacks it (the old process was stopping, or it differs: another VRID, sync
 * address). Never rejects: a companion that cannot start is logged, as the
 * old process has already stopped accepting.
 */
export async function takeOver(
  handover: Handover | undefined,
  inherits: CompanionSet,
  { ha, announcer, sync }: Companions,
  config: FulcrumConfig,
  logger: Logger,
): Promise<void> {
  const message = handover?.message;
  const fds = handover?.fds ?? new Map<string, number>();
  const close = (fd: number | undefined): void => {
    if (fd !== undefined) loadNative().fdPassing.close(fd);
  };
  const fresh = async (what: string, start: () => Promise<void>): Promise<void> => {
    logger.warn(`upgrade: ${what} not handed over: starting it afresh`);
    try {
      await start();
    } catch (err) {
      logger.error({ err }, `upgrade: cannot start ${what}`);
    }
  };
  if (inherits.ha && ha !== undefined) {
    if (message?.ha !== undefined && ha.canResume(message.ha)) ha.resume(message.ha);
    else await fresh('VRRP', () => ha.start());
  }
  if (inherits.sync && sync !== undefined) {
    const state = message?.sync;
    const fd = fds.get('sync');
    let adopted = false;
    if (state !== undefined && fd !== undefined && state.listen === config.sync?.listen.text) {
      try {
        await sync.adopt(fd, BigInt(state.incarnation), BigInt(state.sequence));
        adopted = true;
      } catch (err) {
        logger.error({ err }, 'upgrade: cannot use the session sync socket handed over');
      }
    }
    if (!adopted) {
      close(fd);
      await fresh('session sync', () => sync.start());
    }
  }
  if (inherits.announce && announcer !== undefined) {
    const state = message?.announce;
    const stdinFd = fds.get('birdStdin');
    const stderrFd = fds.get('birdStderr');
    const pipes = state?.bird && stdinFd !== undefined && stderrFd !== undefined ? { pid: state.bird.pid, stdinFd, stderrFd } : undefined;
    let adopted = false;
    if (state !== undefined) {
      try {
        await announcer.adopt(state, pipes);
        adopted = true;
      } catch (err) {
        logger.error({ err }, 'upgrade: cannot take the BGP announcement over');
      }
    }
    // Pipes given to BirdProcess.adopt are its own (closed by it when it fails).
    if (pipes === undefined) [stdinFd, stderrFd].forEach(close);
    if (!adopted) await fresh('the BGP announcement', () => announcer.start());
  } else {
    [fds.get('birdStdin'), fds.get('birdStderr')].forEach(close);
  }
  if (!(inherits.sync && sync !== undefined)) close(fds.get('sync'));
}
