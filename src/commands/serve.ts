// The running lifecycle shared by `fulcrum run` and `fulcrum demo`:
// start the engine, build the runtime (which applies the config), start the
// admin API, log what listens, then wait for a signal and drain. SIGHUP
// reloads the config file (src/runtime.ts) at any time before a stop.
//
//   state      on SIGINT/SIGTERM                    on drain settled
//   ---------  -----------------------------------  ------------------------
//   running    drain(drainTimeoutMs) → draining     -
//   draining   (≥ SAME_PRESS_MS after the first)    stop() → exit 0
//              stop() at once, cut open → exit 0    (logs drained / timeout)
//
// A signal repeated within SAME_PRESS_MS of the first counts as the same
// request: one Ctrl-C under `npm start` reaches node twice, once from the
// terminal (the whole process group) and once forwarded by npm.
//
// Upgrade (SIGUSR2 or POST /api/upgrade, `fulcrum run` only): start the new
// Fulcrum with the sockets (src/upgrade/); once it is ready, stop as on the
// first SIGTERM (close listeners, drain, exit). If it fails, keep running.
// A process started that way adopts the sockets instead of binding and says
// ready once it serves (or failed, with the line it would print on stderr).
// VRRP, the BGP announcement and session sync are handed over, not restarted
// (src/upgrade/protocol.ts): the new process installs the old one's session
// table before it serves, prepares each of them (the VRRP socket opened,
// BIRD's config checked unchanged) and takes them over once it is ready; the
// old one freezes them silently (no priority 0, VIPs stay, no withdraw, BIRD
// runs on) instead of stopping them.
import { kernelRelaySupport, kernelRelayUnavailableNotice, relayInUse } from '../engine/relay-plan.js';
import { AdminServer, type UpgradeOutcome } from '../admin/server.js';
import { Engine, type EngineEvent } from '../engine/engine.js';
import { connectionBudget, readFdLimit } from '../engine/fd-budget.js';
import type { FulcrumConfig } from '../config/types.js';
import { describeApplyError, errorText } from '../control/apply-error.js';
import type { BackendStatus } from '../control/backend-control.js';
import type { Logger } from '../logger.js';
import { FulcrumRuntime } from '../runtime.js';
import { HaInstance } from '../ha/instance.js';
import { Announcer } from '../announce/announcer.js';
import { SessionSync } from '../sync/session-sync.js';
import { ServiceNotifier } from '../systemd/service-notifier.js';
import { sdNotify } from '../systemd/notify.js';
import { companionLink, takeOver } from '../upgrade/companions.js';
import { Inheritance } from '../upgrade/inheritance.js';
import type { UpgradeHooks } from '../upgrade/hooks.js';
import type { CompanionSet } from '../upgrade/protocol.js';
import { startSuccessor } from '../upgrade/successor.js';
import { AcceptPauseLog } from './accept-pause-log.js';
import { EXIT_OK, EXIT_RUNTIME } from './exit-codes.js';

/** Signals closer together than this are one stop request (see the header). */
export const SAME_PRESS_MS = 300;
/** How often engine counters are logged at debug level; the timer also keeps Node alive
 * while only native threads hold work (they do not keep the event loop running). */
const STATS_INTERVAL_MS = 5000;
const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

export interface ServeHooks {
  /** Runs once every service listens, before waiting for a signal (the demo prints its guide here).
   * `adminUrl` is where the admin API listens, undefined when it could not bind. */
  onListening?: (config: FulcrumConfig, adminUrl: string | undefined) => void;
  /** Set by `fulcrum run`: SIGUSR2 and POST /api/upgrade start the new process (src/upgrade/). */
  upgrade?: UpgradeHooks;
}

/**
 * Run `config` until SIGINT/SIGTERM and return the process exit code:
 * 0 after a stop by signal, 1 when the engine cannot start or a listener cannot
 * bind (one line on stderr names the address). Never rejects.
 */
export async function serve(config: FulcrumConfig, logger: Logger, hooks: ServeHooks = {}): Promise<number> {
  logger.info({ config: config.file, workers: config.workers, services: config.services.length }, 'starting');
  // Started by an upgrade: the previous process's sockets, and a channel to tell it how the start went.
  let inheritance: Inheritance | undefined;
  try {
    inheritance = Inheritance.fromEnvironment();
  } catch (err) {
    return fail(logger, errorText(err), err);
  }
  const failStart = (line: string, err: unknown): number => {
    inheritance?.failed(line);
    return fail(logger, line, err);
  };
  let engine: Engine;
  const fdLimit = readFdLimit();
  const budget = fdLimit === undefined ? undefined : connectionBudget(fdLimit, config, config.workers);
  try {
    engine = Engine.start({ workers: config.workers, budget });
  } catch (err) {
    return failStart(`cannot start the data-plane engine: ${errorText(err)}`, err);
  }
  if (budget !== undefined) logger.info(budget, 'connection budget');
  if (inheritance) {
    inheritance.adoptListeners(engine);
    logger.info('upgrade: adopting the listening sockets of the previous process');
  }
  const pauses = new AcceptPauseLog(logger, budget);
  engine.on('event', (event: EngineEvent) => {
    // A refused TCP client has its connection record (connection_log) when the log is on.
    if (event.type === 'client_refused' && refusalIsRecorded(runtime?.config(), event.service)) return;
    if (!pauses.handle(event)) logEngineEvent(logger, event);
  });

  let runtime: FulcrumRuntime;
  let inheritedSessions = 0;
  try {
    runtime = new FulcrumRuntime(engine, config, {
      logger,
      ...(inheritance && { afterFirstApply: (started: Engine) => (inheritedSessions = inheritance.installSessions(started)) }),
    });
  } catch (err) {
    engine.stop();
    return failStart(describeApplyError(err, config), err);
  }
  if (inheritance?.companions.sync) logger.info({ installed: inheritedSessions }, 'upgrade: session table of the previous process installed');
  // What this process takes over from the previous one (the rest starts afresh).
  const inherits: CompanionSet = {
    ha: inheritance?.companions.ha === true && config.ha !== undefined,
    announce: inheritance?.companions.announce === true && config.announce !== undefined,
    sync: inheritance?.companions.sync === true && config.sync !== undefined,
  };
  runtime.control.on('change', (status: BackendStatus) => {
    const fields = { service: status.service, backend: status.backend, state: status.effective, health: status.health, admin: status.admin };
    if (status.effective !== 'down') logger.info(fields, `backend ${status.effective}`);
    else if (undecided(runtime, status)) logger.info(fields, 'backend down until its health is known');
    else logger.warn(fields, 'backend down');
  });
  // The data plane matters more than its dashboard: an admin address that
  // cannot be bound is logged as an error and balancing goes on.
  const admin = new AdminServer(runtime, logger);
  let adminUrl: string | undefined;
  try {
    await admin.listen(config.admin.listen, inheritance?.takeAdmin(config.admin.listen.text));
    adminUrl = admin.url;
    logger.info({ admin: admin.url }, 'admin API listening');
  } catch (err) {
    logger.error({ err, admin: config.admin.listen.text }, `admin API not started: cannot listen on ${config.admin.listen.text}: ${errorText(err)}`);
  }
  const relaySupport = kernelRelaySupport();
  const relayNotice = kernelRelayUnavailableNotice(config.services, relaySupport);
  if (relayNotice !== undefined) logger.warn({ reason: relaySupport.reason }, relayNotice);
  for (const service of config.services) {
    logger.info(
      {
        service: service.name,
        listen: service.listen.text,
        protocol: service.protocol,
        backends: service.backends.map((b) => b.address.text),
        // Names resolved at run time (their addresses are logged as they come: `dns: NAME gives ...`).
        ...(service.discovery ? { dns: service.discovery.map((d) => d.label) } : {}),
        balance: service.balance,
        ...(service.protocol === 'tcp' ? { relay: relayInUse(service, relaySupport) } : {}),
      },
      'listening',
    );
  }
  // Session sync before VRRP and the announcement: it asks the peers for
  // their state at once, and VRRP holds preemption (the announcement holds
  // back every VIP) until a copy has arrived.
  let sync: SessionSync | undefined;
  if (config.sync !== undefined) {
    try {
      const created = new SessionSync({ config: config.sync, engine, serviceNames: () => runtime.config().services.map((s) => s.name), logger });
      sync = created;
      // Upgrade: the previous process still talks to the peers; changes go to it until the handover.
      if (inherits.sync) created.startLinked(inheritance!.linkSessions((records) => created.fromLink(records)));
      else await created.start();
      runtime.attachSync(created);
    } catch (err) {
      runtime.stop();
      await admin.close();
      return failStart(`cannot start session sync on ${config.sync.listen.text}: ${errorText(err)}`, err);
    }
  }
  // HA after the listeners: they bind the VIPs with IP_FREEBIND, so this node
  // serves the moment it becomes Master.
  let ha: HaInstance | undefined;
  if (config.ha !== undefined) {
    try {
      const resyncing = sync;
      ha = new HaInstance({ config: config.ha, logger, engine, ...(resyncing && { holdPreempt: () => resyncing.resyncing() }) });
      // Upgrade: the socket is open; the state machine resumes from the handover.
      if (!inherits.ha) await ha.start();
      runtime.attachHa(ha);
    } catch (err) {
      sync?.stop();
      runtime.stop();
      await admin.close();
      return failStart(`cannot start VRRP on ${config.ha.interface}: ${errorText(err)}`, err);
    }
  }
  let announcer: Announcer | undefined;
  if (config.announce !== undefined) {
    try {
      const learning = sync;
      announcer = new Announcer({ config: config.announce, engine, current: () => runtime.config(), logger, ...(learning && { holdAnnounce: () => learning.resyncing() }) });
      runtime.attachAnnounce(announcer);
      if (inherits.announce) {
        // Refused before 'ready' (the old process keeps serving) rather than withdrawn after it.
        const why = announcer.cannotAdopt();
        if (why !== undefined) throw new Error(why);
      } else await announcer.start();
    } catch (err) {
      // Not when it was to be taken over: BIRD is the previous process's, and its stop would withdraw.
      if (!inherits.announce) await announcer?.stop();
      sync?.stop();
      await ha?.stop();
      runtime.stop();
      await admin.close();
      return failStart(`cannot start the BGP announcement (BIRD): ${errorText(err)}`, err);
    }
  }
  // The previous process (upgrade) stops accepting and drains from here on,
  // and hands over what this one takes over.
  if (inheritance) await takeOver(await inheritance.ready(inherits), inherits, { ha, announcer, sync }, config, logger);
  hooks.onListening?.(config, adminUrl);
  // Under systemd (Type=notify): READY=1, reload, stop, status and watchdog.
  const notifier = ServiceNotifier.start({ runtime, logger });
  notifier?.listening();
  // Under systemd the main PID moves to the new Fulcrum once it is ready
  // (NotifyAccess=main: only this process may say so).
  const upgradeHooks: UpgradeHooks | undefined = hooks.upgrade && {
    ...hooks.upgrade,
    onHandedOver: (pid) => {
      if (notifier !== undefined) sdNotify({ MAINPID: pid });
      hooks.upgrade?.onHandedOver?.(pid);
    },
  };
  await untilStopped(runtime, logger, { ha, announcer, sync, notifier }, { admin, hooks: upgradeHooks });
  await admin.close();
  return EXIT_OK;
}

/** What runs beside the engine and stops with it. */
interface Companions {
  ha?: HaInstance | undefined;
  announcer?: Announcer | undefined;
  sync?: SessionSync | undefined;
  notifier?: ServiceNotifier | undefined;
}

/** What an upgrade needs: the admin API (its socket is handed over) and the hooks (absent: not upgradable). */
interface UpgradeContext {
  admin: AdminServer;
  hooks: UpgradeHooks | undefined;
}

/** Resolves once the engine is stopped after a stop signal or an upgrade (drained, timed out or cut). */
function untilStopped(runtime: FulcrumRuntime, logger: Logger, { ha, announcer, sync, notifier }: Companions, { admin, hooks }: UpgradeContext): Promise<void> {
  const { engine } = runtime;
  return new Promise((resolve) => {
    const keepAlive = setInterval(() => logStats(engine, logger), STATS_INTERVAL_MS);
    let firstSignalAt: number | undefined;
    let stopped = false;
    // What an upgrade handed over to the new process: frozen here, not stopped as on SIGTERM.
    let handedOver: () => CompanionSet = () => ({});

    const stop = (): void => {
      if (stopped) return;
      stopped = true;
      clearInterval(keepAlive);
      for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
      process.off('SIGHUP', onReloadSignal);
      process.off('SIGUSR1', onReopenSignal);
      notifier?.close();
      process.off('SIGUSR2', onUpgradeSignal);
      sync?.stop();
      runtime.stop();
      // A Master has already handed over (on the first signal); this waits for its VIPs to be gone,
      // and the announcement (withdrawn on the first signal) stops BIRD.
      void Promise.allSettled([ha?.stop(), announcer?.stop()]).finally(() => {
        logger.info('stopped');
        resolve();
      });
    };

    const onSignal = (signal: NodeJS.Signals | 'upgrade'): void => {
      if (firstSignalAt === undefined) {
        firstSignalAt = Date.now();
        notifier?.stopping();
        const handed = handedOver();
        // Hand the VIPs over first (priority-0 advert): the peer takes new
        // connections while this node drains the ones it has. (After an
        // upgrade's handover this only waits for the notify script.)
        void ha?.stop();
        // Withdraw the announced VIPs and keep listening for withdraw_grace,
        // while the router moves new connections to the other nodes; not when
        // the new process took the announcement over.
        const withdrawn = announcer && !handed.announce ? withdrawThenWait(announcer, runtime.config().announce!.withdrawGraceMs, logger) : Promise.resolve();
        // "draining" is logged once every worker has closed its listeners, so
        // from then on new connects are refused.
        const { drainTimeoutMs } = runtime.config();
        const drained = withdrawn.then(() => runtime.closeListeners()).then(() => {
          logger.info(
            { signal, open: engine.activeConnections(), drainTimeoutMs },
            'draining: listeners closed, waiting for open connections (send the signal again to stop now)',
          );
          return engine.drain(drainTimeoutMs);
        });
        drained.then(
          (all) => {
            if (stopped) return;
            if (all) logger.info('drained: all connections finished');
            else logger.warn({ open: engine.activeConnections() }, 'drain timeout: closing the connections still open');
            stop();
          },
          (err: unknown) => {
            logger.error({ err }, 'drain failed: stopping now');
            stop();
          },
        );
        return;
      }
      if (Date.now() - firstSignalAt < SAME_PRESS_MS) {
        logger.debug({ signal }, 'repeated signal ignored (same stop request)');
        return;
      }
      logger.warn({ signal, open: engine.activeConnections() }, 'second signal: stopping now, open connections cut');
      stop();
    };

    let upgrading: Promise<UpgradeOutcome> | undefined;
    const upgrade = (trigger: 'signal' | 'api'): Promise<UpgradeOutcome> => {
      const refuse = (status: number, code: string, reason: string): Promise<UpgradeOutcome> => {
        logger.warn({ trigger }, `upgrade refused: ${reason}`);
        return Promise.resolve({ ok: false, status, code, reason });
      };
      if (firstSignalAt !== undefined || stopped) return refuse(503, 'stopping', 'fulcrum is stopping');
      if (upgrading) return refuse(409, 'upgrading', 'an upgrade is already in progress');
      if (hooks === undefined) return refuse(409, 'not_upgradable', 'only `fulcrum run` can be upgraded');
      const config = runtime.config();
      const adminFd = admin.fd;
      logger.info({ trigger }, 'upgrade: starting the new process');
      const companions = companionLink({ ha, announcer, sync }, () => firstSignalAt !== undefined || stopped);
      handedOver = companions.handedOver;
      upgrading = startSuccessor({ engine, logger, admin: adminFd === undefined ? undefined : { fd: adminFd, listen: config.admin.listen.text }, link: companions.link }).then(
        (pid): UpgradeOutcome => {
          logger.info({ newPid: pid }, 'upgrade: the new process is ready and accepting; this one stops accepting and drains');
          try {
            hooks.onHandedOver?.(pid);
          } catch (err) {
            logger.error({ err }, 'upgrade: the onHandedOver hook failed');
          }
          admin.stopListening();
          // The new process adopted the kernel UDP datapath's pinned flows and attached its programs.
          engine.handOverUdpFlows();
          // A SIGTERM during the upgrade already began the drain: not a second signal.
          if (firstSignalAt === undefined) onSignal('upgrade');
          return { ok: true, pid };
        },
        (err: unknown): UpgradeOutcome => {
          const reason = errorText(err);
          logger.error({ err }, `upgrade failed, this process keeps serving: ${reason}`);
          upgrading = undefined;
          return { ok: false, status: 500, code: 'upgrade_failed', reason };
        },
      );
      return upgrading;
    };
    admin.setUpgrade(() => upgrade('api'));
    const onUpgradeSignal = (): void => void upgrade('signal');

    // The outcome is logged by the runtime (reloaded / reload rejected).
    const onReloadSignal = (): void => void runtime.reload('signal');
    // logrotate's postrotate: the connection log's file was moved away.
    const onReopenSignal = (): void => {
      try {
        runtime.reopenLogs();
      } catch (err) {
        logger.error({ err }, 'cannot reopen the connection log: still writing the old file');
      }
    };

    for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
    process.on('SIGHUP', onReloadSignal);
    process.on('SIGUSR1', onReopenSignal);
    process.on('SIGUSR2', onUpgradeSignal);
  });
}

/**
 * True when a backend is down only because nothing has decided its health
 * yet: a reload added it (the health checker has not seen it) or its first
 * check has not run. That is the normal start of a backend, not a warning;
 * the health checker logs the first failing check with its reason.
 */
function undecided(runtime: FulcrumRuntime, status: BackendStatus): boolean {
  if (status.admin !== 'enabled') return false;
  const health = runtime.health.snapshot().find((h) => h.service === status.service && h.backend === status.backend);
  return health === undefined || (health.checkType !== 'none' && health.history.length === 0 && health.ejectedUntil === undefined);
}

/** Withdraw every announced VIP, then keep the listeners open for `graceMs`. */
async function withdrawThenWait(announcer: Announcer, graceMs: number, logger: Logger): Promise<void> {
  await announcer.withdrawAll();
  logger.info({ withdrawGraceMs: graceMs }, 'announce: VIPs withdrawn; listeners stay open for the grace period');
  if (graceMs > 0) await new Promise((resolve) => setTimeout(resolve, graceMs));
}

const WARN_EVENTS: ReadonlySet<EngineEvent['type']> = new Set([
  'connect_failed',
  'accept_paused',
  'listener_error',
  'source_bind_failed',
  'events_dropped',
]);

/** True when a refused client of `service` gets a connection record instead of a client_refused line. */
function refusalIsRecorded(config: FulcrumConfig | undefined, service: string | undefined): boolean {
  if (config === undefined || config.connectionLog.output === 'off') return false;
  return config.services.find((s) => s.name === service)?.protocol === 'tcp';
}

function logEngineEvent(logger: Logger, event: EngineEvent): void {
  const { type, ...fields } = event;
  if (WARN_EVENTS.has(type)) logger.warn({ event: type, ...fields }, type);
  else logger.info({ event: type, ...fields }, type);
}

function logStats(engine: Engine, logger: Logger): void {
  if (!logger.isLevelEnabled('debug')) return;
  const stats = engine.stats();
  logger.debug(
    {
      services: stats.services.map((s) => ({
        name: s.name,
        accepted: s.accepted,
        active: s.active,
        failed: s.failed,
        bytesIn: s.bytesIn,
        bytesOut: s.bytesOut,
      })),
      pooledPipes: stats.pooledPipes,
      acceptPauses: stats.acceptPauses,
    },
    'stats',
  );
}

/** Log the failure and write it as one line on stderr; returns the runtime exit code. */
function fail(logger: Logger, line: string, err: unknown): number {
  logger.error({ err }, line);
  process.stderr.write(`fulcrum: ${line}\n`);
  return EXIT_RUNTIME;
}
