// The engine under test, run in this process: start it, give it a one-service
// config on a free port, and stop it at teardown. Also collects the engine's
// events and builds configs the way a user writes them (YAML text through
// parseConfig), so these tests exercise the same path as `fulcrum run`.
import type { Test } from 'tap';
import { parseConfig } from '../../src/config/load.js';
import type { Balance, FulcrumConfig } from '../../src/config/types.js';
import { Engine, type EngineEvent } from '../../src/engine/engine.js';
import type { ServiceStats } from '../../src/engine/stats.js';
import { freePort } from './backends.js';
import { HOST } from './traffic.js';

export const SERVICE = 'svc';

/** A backend as a test names it: a port on 127.0.0.1, optionally weighted,
 * optionally with more YAML keys of its own (`backup: true`, `max_connections: 2`). */
export type BackendRef = number | { port: number; weight?: number; keys?: readonly string[] };

export interface ServiceOptions {
  backends: readonly BackendRef[];
  balance?: Balance;
  /** Extra connect attempts after the first fails; the config default (2) when absent. */
  retries?: number;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  /** More service keys, one YAML line each (`queue: {size: 1, timeout: 300ms}`). */
  keys?: readonly string[];
  /** The `connection_log:` section's keys, one YAML line each; off when absent
   * (its records would otherwise go to the test's stdout). */
  connectionLog?: readonly string[];
  /** More top-level keys, one YAML line each (`drain_timeout: 1s`). */
  topKeys?: readonly string[];
  /** relay: (helpers/relays.ts); the config's default (auto) when absent. */
  relay?: 'auto' | 'user' | 'kernel';
}

/** The YAML a user would write for one service listening on 127.0.0.1:listenPort. */
export function serviceYaml(listenPort: number, o: ServiceOptions, workers = 2, logLevel = 'warn'): string {
  const lines = [
    `workers: ${workers}`,
    ...(o.topKeys ?? []),
    'log:',
    `  level: ${logLevel}`,
    'connection_log:',
    ...(o.connectionLog ?? ['output: off']).map((line) => `  ${line}`),
    'services:',
    `  - name: ${SERVICE}`,
    `    listen: ${HOST}:${listenPort}`,
    `    balance: ${o.balance ?? 'roundrobin'}`,
  ];
  if (o.retries !== undefined) lines.push(`    retries: ${o.retries}`);
  if (o.connectTimeoutMs !== undefined || o.idleTimeoutMs !== undefined) {
    lines.push('    timeouts:');
    if (o.connectTimeoutMs !== undefined) lines.push(`      connect: ${o.connectTimeoutMs}ms`);
    if (o.idleTimeoutMs !== undefined) lines.push(`      idle: ${o.idleTimeoutMs}ms`);
  }
  if (o.relay !== undefined) lines.push(`    relay: ${o.relay}`);
  for (const key of o.keys ?? []) lines.push(`    ${key}`);
  lines.push('    backends:');
  for (const b of o.backends) {
    const { port, weight, keys } = typeof b === 'number' ? { port: b, weight: undefined, keys: [] } : b;
    lines.push(`      - address: ${HOST}:${port}`);
    if (weight !== undefined) lines.push(`        weight: ${weight}`);
    for (const key of keys ?? []) lines.push(`        ${key}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The validated config for one service, through the same parser `fulcrum run` uses. */
export function serviceConfig(listenPort: number, o: ServiceOptions, workers = 2): FulcrumConfig {
  return parseConfig(serviceYaml(listenPort, o, workers), 'test-service.yaml');
}

export interface RunningEngine {
  engine: Engine;
  /** The service's listening port on 127.0.0.1. */
  port: number;
  /** Every event the engine emitted, in order. */
  events: EngineEvent[];
  /** This service's counters now. */
  service(): ServiceStats;
}

/** Engine.start({workers}) in this process; stopped at teardown. */
export function startEngine(t: Test, workers = 2): { engine: Engine; events: EngineEvent[] } {
  const engine = Engine.start({ workers });
  const events: EngineEvent[] = [];
  engine.on('event', (event: EngineEvent) => events.push(event));
  t.teardown(() => engine.stop());
  return { engine, events };
}

/**
 * Start an engine and apply a one-service config on a free port. The port is
 * found by binding port 0 and closing it, so another process may take it
 * before the engine binds: on EADDRINUSE, try a new port (bounded).
 */
export async function startService(t: Test, o: ServiceOptions, workers = 2, attempts = 5): Promise<RunningEngine> {
  const { engine, events } = startEngine(t, workers);
  for (let i = 1; ; i++) {
    const port = await freePort();
    try {
      engine.apply(serviceConfig(port, o, workers));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' && i < attempts) continue;
      throw err;
    }
    const service = (): ServiceStats => {
      const stats = engine.stats().services.find((s) => s.name === SERVICE);
      if (stats === undefined) throw new Error(`engine stats have no service "${SERVICE}"`);
      return stats;
    };
    return { engine, port, events, service };
  }
}
