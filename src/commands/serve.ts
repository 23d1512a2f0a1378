// The running lifecycle shared by `fulcrum run` and `fulcrum demo`:
// start the engine, apply the config, log what listens, then wait for a signal
// and drain.
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
import { Engine, type EngineEvent } from '../engine/engine.js';
import type { FulcrumConfig } from '../config/types.js';
import { BackendControl } from '../control/backend-control.js';
import { HealthMonitor } from '../health/health-monitor.js';
import type { Logger } from '../logger.js';
import { EXIT_OK, EXIT_RUNTIME } from './exit-codes.js';

/** Signals closer together than this are one stop request (see the header). */
export const SAME_PRESS_MS = 300;
/** How often engine counters are logged at debug level; the timer also keeps Node alive
 * while only native threads hold work (they do not keep the event loop running). */
const STATS_INTERVAL_MS = 5000;
const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

export interface ServeHooks {
  /** Runs once every service listens, before waiting for a signal (the demo prints its guide here). */
  onListening?: (config: FulcrumConfig) => void;
}

/**
 * Run `config` until SIGINT/SIGTERM and return the process exit code:
 * 0 after a stop by signal, 1 when the engine cannot start or a listener cannot
 * bind (one line on stderr names the address). Never rejects.
 */
export async function serve(config: FulcrumConfig, logger: Logger, hooks: ServeHooks = {}): Promise<number> {
  logger.info({ config: config.file, workers: config.workers, services: config.services.length }, 'starting');
  let engine: Engine;
  try {
    engine = Engine.start({ workers: config.workers });
  } catch (err) {
    return fail(logger, `cannot start the data-plane engine: ${errorText(err)}`, err);
  }
  engine.on('event', (event: EngineEvent) => logEngineEvent(logger, event));

  try {
    engine.apply(config);
  } catch (err) {
    engine.stop();
    return fail(logger, describeApplyError(err, config), err);
  }
  // Health decides backend states through BackendControl (the operator's word wins over it).
  const control = new BackendControl(engine);
  const health = new HealthMonitor({ engine, control, logger });
  control.sync(config.services, (service, backend) => health.initialVerdict(service, backend, 'start'));
  health.update(config);
  for (const service of config.services) {
    logger.info(
      {
        service: service.name,
        listen: service.listen.text,
        backends: service.backends.map((b) => b.address.text),
        balance: service.balance,
      },
      'listening',
    );
  }
  hooks.onListening?.(config);
  await untilStopped(engine, config, logger);
  health.stop();
  return EXIT_OK;
}

/** Resolves once the engine is stopped after a stop signal (drained, timed out or cut). */
function untilStopped(engine: Engine, config: FulcrumConfig, logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    const keepAlive = setInterval(() => logStats(engine, logger), STATS_INTERVAL_MS);
    let firstSignalAt: number | undefined;
    let stopped = false;

    const stop = (): void => {
      if (stopped) return;
      stopped = true;
      clearInterval(keepAlive);
      for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
      engine.stop();
      logger.info('stopped');
      resolve();
    };

    const onSignal = (signal: NodeJS.Signals): void => {
      if (firstSignalAt === undefined) {
        firstSignalAt = Date.now();
        // "draining" is logged once every worker has closed its listeners, so
        // from then on new connects are refused.
        const drained = engine.closeListeners().then(() => {
          logger.info(
            { signal, open: engine.activeConnections(), drainTimeoutMs: config.drainTimeoutMs },
            'draining: listeners closed, waiting for open connections (send the signal again to stop now)',
          );
          return engine.drain(config.drainTimeoutMs);
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

    for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  });
}

const WARN_EVENTS: ReadonlySet<EngineEvent['type']> = new Set([
  'connect_failed',
  'accept_paused',
  'listener_error',
  'events_dropped',
]);

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

const BIND_CODES: Readonly<Record<string, string>> = {
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available on this host',
  EACCES: 'permission denied',
};

/**
 * One line for an apply() failure that names the address. The engine's Error
 * carries the errno name in `code`; when its message names no listen address,
 * the busy one is found by trying to bind each (the engine has released its own
 * listeners by then).
 */
/** One line for a failed apply; the engine's error names the service whose listener failed. */
function describeApplyError(err: unknown, config: FulcrumConfig): string {
  const { code, service: name } = (err ?? {}) as { code?: string; service?: string };
  const reason = code && BIND_CODES[code] ? `${BIND_CODES[code]} (${code})` : errorText(err);
  const service = config.services.find((s) => s.name === name);
  if (!service) return `cannot apply the config: ${reason}`;
  return `cannot listen on ${service.listen.text} (service ${service.name}): ${reason}`;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
