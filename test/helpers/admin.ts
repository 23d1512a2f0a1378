// The runtime and its admin API under test, in this process: a config file in
// a temp dir (reload re-reads it), Engine + FulcrumRuntime + AdminServer on a
// free port, all stopped at teardown; and a small HTTP client for the API.
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import type { Test } from 'tap';
import { AdminServer } from '../../src/admin/server.js';
import { loadConfig } from '../../src/config/load.js';
import type { FulcrumConfig } from '../../src/config/types.js';
import type { HaSource, HealthSource } from '../../src/control/types.js';
import { Engine } from '../../src/engine/engine.js';
import { createLogger, type Logger } from '../../src/logger.js';
import { FulcrumRuntime } from '../../src/runtime.js';
import { freePort } from './backends.js';
import { writeConfig } from './cli.js';

export const TOKEN = 'test-admin-token-0123456789abcdef';

export interface RuntimeUnderTest {
  runtime: FulcrumRuntime;
  admin: AdminServer;
  /** http://127.0.0.1:port of the admin API. */
  base: string;
  file: string;
  /** Rewrite the config file (the next reload reads it). */
  write(text: string): void;
  /** Every log line the runtime and the admin server wrote. */
  logs: Array<Record<string, unknown>>;
}

/** A logger at info that keeps its lines in `logs`. */
export function memoryLogger(logs: Array<Record<string, unknown>>): Logger {
  return createLogger('info', { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
}

export interface RuntimeOptions {
  health?: HealthSource;
  load?: (file: string) => Promise<FulcrumConfig>;
  ha?: HaSource;
  workers?: number;
}

/**
 * Start a runtime for the config `yaml(listenPort)` (one free port for a
 * service; EADDRINUSE retried) with the admin API on 127.0.0.1, port 0.
 */
export async function startRuntime(t: Test, yaml: (listenPort: number) => string, options: RuntimeOptions = {}): Promise<RuntimeUnderTest & { port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const file = writeConfig(t, yaml(port));
    const config = await loadConfig(file);
    const logs: Array<Record<string, unknown>> = [];
    const engine = Engine.start({ workers: options.workers ?? 2 });
    let runtime: FulcrumRuntime;
    try {
      runtime = new FulcrumRuntime(engine, config, { logger: memoryLogger(logs), health: options.health, ha: options.ha, load: options.load });
    } catch (err) {
      engine.stop();
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < 5) continue;
      throw err;
    }
    const admin = new AdminServer(runtime, memoryLogger(logs));
    await admin.listen({ host: '127.0.0.1', port: 0, family: 4, text: '127.0.0.1:0' });
    t.teardown(async () => {
      await admin.close();
      runtime.stop();
    });
    return { runtime, admin, base: admin.url, file, port, logs, write: (text) => writeFileSync(file, text) };
  }
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The body parsed as JSON (undefined when it is not JSON); untyped on purpose, tests index into it freely. */
  json: any;
}

export interface HttpOptions {
  token?: string;
  /** Raw Authorization header (overrides token). */
  authorization?: string;
  body?: string | Buffer;
  /** Default application/json for POST. */
  contentType?: string | null;
  headers?: Record<string, string>;
}

/** One HTTP request; the connection is not kept alive. */
export function http(base: string, method: string, path: string, options: HttpOptions = {}): Promise<HttpResult> {
  const url = new URL(path, base);
  const headers: Record<string, string> = { Connection: 'close', ...options.headers };
  if (options.authorization !== undefined) headers.Authorization = options.authorization;
  else if (options.token !== undefined) headers.Authorization = `Bearer ${options.token}`;
  const contentType = options.contentType === undefined ? (method === 'POST' ? 'application/json' : null) : options.contentType;
  if (contentType !== null) headers['Content-Type'] = contentType;
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 10 s`)));
    req.on('error', reject);
    req.end(options.body);
  });
}
