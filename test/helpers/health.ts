// The health checker under test, wired as `fulcrum run` wires it: an engine
// with a config applied, BackendControl synced, a HealthMonitor updated; its
// pino log lines captured in memory so tests can assert on them (and on what
// they must never contain). Everything is stopped at teardown.
import type { Test } from 'tap';
import { parseConfig } from '../../src/config/load.js';
import type { FulcrumConfig } from '../../src/config/types.js';
import { BackendControl } from '../../src/control/backend-control.js';
import type { Engine } from '../../src/engine/engine.js';
import { HealthMonitor } from '../../src/health/health-monitor.js';
import { createLogger } from '../../src/logger.js';
import { freePort } from './backends.js';
import { startEngine } from './engine.js';
import { waitUntil } from './traffic.js';

export interface CapturedLogs {
  /** Every line as written (raw JSON text). */
  readonly raw: string[];
  /** Parsed lines. */
  readonly lines: Array<Record<string, unknown> & { msg: string; level: string }>;
}

/** A pino logger (level debug) that keeps its lines in memory. */
export function captureLogger(level: 'debug' | 'info' = 'debug'): { logger: ReturnType<typeof createLogger>; logs: CapturedLogs } {
  const logs: CapturedLogs = { raw: [], lines: [] };
  const logger = createLogger(level, {
    write(line: string) {
      logs.raw.push(line);
      logs.lines.push(JSON.parse(line) as CapturedLogs['lines'][number]);
    },
  });
  return { logger, logs };
}

export interface HealthHarness {
  engine: Engine;
  control: BackendControl;
  monitor: HealthMonitor;
  logs: CapturedLogs;
  /** The first service's port on 127.0.0.1. */
  port: number;
  config: FulcrumConfig;
  /** Apply a new config as a reload does (apply, sync, update). */
  reload(yaml: string): FulcrumConfig;
  /** The verdict BackendControl holds for a backend. */
  health(backend: string, service?: string): string;
  /** Wait (bounded) until the backend's health is `verdict`; resolves with the ms waited. */
  waitHealth(backend: string, verdict: 'up' | 'down', timeoutMs: number, service?: string): Promise<number>;
}

/**
 * Start engine + BackendControl + HealthMonitor on `yaml(listenPort)`, a
 * config as a user writes it. `yaml` gets a free port for its first service.
 */
export async function startHealth(t: Test, yaml: (listenPort: number) => string, workers = 2): Promise<HealthHarness> {
  const { engine } = startEngine(t, workers);
  const { logger, logs } = captureLogger();
  const port = await freePort();
  const config = parseConfig(yaml(port), `${t.fullname.replace(/\W+/g, '-')}.yaml`);
  engine.apply(config);
  const control = new BackendControl(engine);
  const monitor = new HealthMonitor({ engine, control, logger });
  t.teardown(() => monitor.stop());
  control.sync(config.services, (s, b, backend) => monitor.initialVerdict(s, b, 'start', backend.healthCheck));
  monitor.update(config);
  const firstService = config.services[0]!.name;
  const health = (backend: string, service = firstService): string => control.status(service, backend).health;
  return {
    engine,
    control,
    monitor,
    logs,
    port,
    config,
    reload(text: string): FulcrumConfig {
      const next = parseConfig(text, 'reload.yaml');
      engine.apply(next);
      control.sync(next.services, (s, b, backend) => monitor.initialVerdict(s, b, 'reload', backend.healthCheck));
      monitor.update(next);
      return next;
    },
    health,
    async waitHealth(backend, verdict, timeoutMs, service = firstService) {
      const started = Date.now();
      await waitUntil(`${backend} health ${verdict}`, () => health(backend, service) === verdict, timeoutMs, 5);
      return Date.now() - started;
    },
  };
}

/** The monitor's log lines about state changes of `backend` (one per change). */
export function stateChanges(logs: CapturedLogs, backend: string): Array<{ health: string; reason: string }> {
  return logs.lines
    .filter((l) => l.backend === backend && typeof l.health === 'string' && typeof l.reason === 'string')
    .map((l) => ({ health: l.health as string, reason: l.reason as string }));
}
