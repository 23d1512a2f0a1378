// `fulcrum demo [-c FILE]` — what `npm start` runs: demo backends for the
// config's loopback backends, then exactly what `fulcrum run` does, plus a
// short guide on stdout for the person at the terminal.
import { fileURLToPath } from 'node:url';
import type { Endpoint, FulcrumConfig, ServiceConfig } from '../config/types.js';
import { isLoopback, startDemoBackends, type DemoBackends } from '../demo-backends.js';
import { DemoBackendError } from '../errors.js';
import { createLogger } from '../logger.js';
import { EXIT_OK, EXIT_RUNTIME, EXIT_USAGE } from './exit-codes.js';
import { loadConfigOrReport } from './config-file.js';
import { serve } from './serve.js';
import { helpShown, parseCommandOptions } from './usage.js';

/** The config shipped in the package (dist/commands/demo.js → config/fulcrum.yaml). */
export const BUNDLED_CONFIG = fileURLToPath(new URL('../../config/fulcrum.yaml', import.meta.url));

export async function demoCommand(args: readonly string[]): Promise<number> {
  const options = parseCommandOptions('demo', args, ['config', 'log-level', 'help']);
  if (helpShown('demo', options)) return EXIT_OK;
  const file = options.config ?? BUNDLED_CONFIG;
  const config = await loadConfigOrReport(file);
  if (config === undefined) return EXIT_USAGE;
  const logger = createLogger(options.logLevel ?? config.log.level, undefined, config.log.format);

  const all = config.services.flatMap((s) => s.backends.map((b) => b.address));
  const remote = all.filter((a) => !isLoopback(a));
  let backends: DemoBackends;
  try {
    backends = await startDemoBackends(all.filter(isLoopback));
  } catch (err) {
    if (!(err instanceof DemoBackendError)) throw err;
    process.stderr.write(
      `fulcrum demo: ${err.message}.\n` +
        `  Stop whatever listens on ${err.address.text} (see: ss -ltnp 'sport = :${err.address.port}'),\n` +
        `  or change the backends in ${file}.\n`,
    );
    return EXIT_RUNTIME;
  }
  logger.info({ backends: backends.addresses.map((a) => a.text) }, 'demo backends listening');

  try {
    return await serve(config, logger, { onListening: (_config, adminUrl) => process.stdout.write(guide(config, remote, adminUrl)) });
  } finally {
    await backends.close();
  }
}

/** The human-readable part: where Fulcrum listens and how to send traffic through it.
 * The status page is advertised only when the admin API listens (`adminUrl`). */
function guide(config: FulcrumConfig, remote: readonly Endpoint[], adminUrl: string | undefined): string {
  const lines = ['', 'Fulcrum demo is running.', ''];
  for (const service of config.services) lines.push(...describeService(service));
  lines.push(
    '',
    'Each connection is greeted by the demo backend it reached ("fulcrum demo backend HOST:PORT"),',
    'which then echoes what you send. The demo backends run inside this process.',
  );
  if (remote.length > 0) {
    lines.push(`Not on loopback, so not started by the demo: ${remote.map((a) => a.text).join(', ')}.`);
  }
  const first = config.services[0];
  if (first !== undefined) {
    const { host, port } = reachable(first.listen);
    lines.push(
      '',
      'Try it from another terminal:',
      `  nc ${host} ${port}`,
      '  or, without nc:',
      `  node -e "const s=require('net').connect(${port},'${host}');s.pipe(process.stdout);process.stdin.pipe(s)"`,
    );
  }
  if (adminUrl !== undefined) {
    const admin = reachable(config.admin.listen);
    const adminHost = admin.host.includes(':') ? `[${admin.host}]` : admin.host;
    lines.push('', `Status page: http://${adminHost}:${admin.port}/   (also: fulcrum status, and /metrics for Prometheus)`);
  } else {
    lines.push(
      '',
      `No status page: the admin API could not listen on ${config.admin.listen.text} (see the error above);`,
      'balancing works without it. Change admin.listen in the config to get it.',
    );
  }
  const seconds = Math.round(config.drainTimeoutMs / 1000);
  lines.push(
    '',
    `Press Ctrl-C to stop: open connections get up to ${seconds}s to finish; Ctrl-C again stops at once.`,
    config.log.format === 'text' ? 'Logs below are one line per event.' : 'Logs below are JSON lines (log.format: text for plain lines).',
    '',
  );
  return `${lines.join('\n')}\n`;
}

function describeService(service: ServiceConfig): string[] {
  const backends = service.backends
    .map((b) => (service.balance === 'weighted' ? `${b.address.text} (weight ${b.weight})` : b.address.text))
    .join(', ');
  return [`  ${service.name}: ${service.listen.text} -> ${backends}, balance ${service.balance}`];
}

/** Where a client on this host connects to reach `listen` (a wildcard address means loopback works). */
function reachable(listen: Endpoint): { host: string; port: number } {
  if (listen.host === '0.0.0.0') return { host: '127.0.0.1', port: listen.port };
  if (listen.host === '::') return { host: '::1', port: listen.port };
  return { host: listen.host, port: listen.port };
}
