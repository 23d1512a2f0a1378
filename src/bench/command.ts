// `fulcrum bench server|client|compare`: the command-line front of the harness.
import { writeFileSync } from 'node:fs';
import { EXIT_OK, EXIT_RUNTIME } from '../commands/exit-codes.js';
import { loadNative, type Workload } from '../engine/native.js';
import { UsageError } from '../errors.js';
import { formatComparison, formatMeasurementLine, runComparison, type Measurement } from './compare.js';
import { formatIntervalLine, formatSummary } from './format.js';
import { parseClientOptions, parseCompareOptions, parseServerOptions } from './options.js';
import { runWorkload } from './run-client.js';
import { renderComparisonSvg } from './svg-chart.js';
import { BENCH_USAGE } from './usage-text.js';

export async function benchCommand(args: readonly string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '-h' || sub === '--help' || sub === 'help') {
    process.stdout.write(BENCH_USAGE);
    return EXIT_OK;
  }
  switch (sub) {
    case 'server':
      return serverCommand(rest);
    case 'client':
      return clientCommand(rest);
    case 'compare':
      return compareCommand(rest);
    default:
      throw new UsageError(`bench: unknown subcommand '${sub}' (expected server, client or compare)`, 'bench');
  }
}

/** A controller aborted by the first SIGINT/SIGTERM (the run stops cleanly and still reports). */
function abortOnSignal(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onSignal = (): void => controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

async function serverCommand(args: readonly string[]): Promise<number> {
  const options = parseServerOptions(args);
  if (options.help) {
    process.stdout.write(BENCH_USAGE);
    return EXIT_OK;
  }
  const bench = loadNative().bench;
  let server;
  try {
    server = new bench.Server({ host: options.host, port: options.port, threads: options.threads });
  } catch (err) {
    process.stderr.write(`fulcrum bench server: ${(err as Error).message}\n`);
    return EXIT_RUNTIME;
  }
  const where = options.host.includes(':') ? `[${options.host}]:${server.port}` : `${options.host}:${server.port}`;
  process.stdout.write(`fulcrum bench server listening on ${where} (tcp and udp, protocol v${bench.protocolVersion}, ${options.threads} threads)\n`);
  const { signal, dispose } = abortOnSignal();
  const flushLog = (): void => {
    for (const line of server.takeLog()) process.stderr.write(`fulcrum bench server: ${line}\n`);
  };
  const timer = setInterval(flushLog, 200);
  await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  clearInterval(timer);
  flushLog();
  const stats = server.stats();
  server.close();
  dispose();
  process.stdout.write(`fulcrum bench server stopped: ${stats.sessions} sessions, ${stats.connections} connections, ${stats.protocolErrors} protocol errors, ${stats.datagrams} datagrams\n`);
  return EXIT_OK;
}

async function clientCommand(args: readonly string[]): Promise<number> {
  const options = parseClientOptions(args);
  if (options.help) {
    process.stdout.write(BENCH_USAGE);
    return EXIT_OK;
  }
  const { signal, dispose } = abortOnSignal();
  try {
    if (!options.json) {
      process.stdout.write(`fulcrum bench client: ${options.workload} to ${options.target.host}:${options.target.port} for ${options.run.durationS} s\n`);
    }
    const report = await runWorkload(options.workload, options.target, options.run, {
      signal,
      onInterval: (record, progress) => {
        if (!options.json) process.stdout.write(`${formatIntervalLine(options.workload, record, progress)}\n`);
      },
    });
    process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatSummary(report)}\n`);
    return EXIT_OK;
  } catch (err) {
    process.stderr.write(`fulcrum bench client: ${describe(err)}\n`);
    return EXIT_RUNTIME;
  } finally {
    dispose();
  }
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
}

async function compareCommand(args: readonly string[]): Promise<number> {
  const options = parseCompareOptions(args);
  if (options.help) {
    process.stdout.write(BENCH_USAGE);
    return EXIT_OK;
  }
  const log = (line: string): void => {
    (options.json ? process.stderr : process.stdout).write(`${line}\n`);
  };
  log(`fulcrum bench compare: ${options.workloads.join(', ')} x ${options.targets.map((t) => t.name).join(', ')}, ${options.rounds} rounds`);
  const { measurements, comparisons } = await runComparison(
    options.workloads,
    options.targets,
    options.rounds,
    (workload: Workload, target) => runWorkload(workload, target, options.run[workload]),
    {
      onMeasurement: (m: Measurement, index, total) => log(formatMeasurementLine(m, index, total)),
    },
  );
  if (options.svg !== undefined) {
    writeFileSync(options.svg, renderComparisonSvg(comparisons, options.title ?? `fulcrum bench compare (${options.rounds} rounds)`));
    log(`wrote ${options.svg}`);
  }
  if (options.json) process.stdout.write(`${JSON.stringify({ version: 1, rounds: options.rounds, options: options.run, targets: options.targets, comparisons, measurements }, null, 2)}\n`);
  else process.stdout.write(`\n${formatComparison(comparisons)}\n`);
  return measurements.every((m) => Number.isFinite(m.value)) ? EXIT_OK : EXIT_RUNTIME;
}
