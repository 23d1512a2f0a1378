#!/usr/bin/env node
// The `fulcrum` command line: dispatch to a command and turn its result into
// the exit code (0 ok, 1 runtime error, 2 usage or config error).
import { readFileSync } from 'node:fs';
import { benchCommand } from './bench/command.js';
import { backendCommand } from './commands/backend.js';
import { configCommand } from './commands/config.js';
import { checkCommand } from './commands/check.js';
import { demoCommand } from './commands/demo.js';
import { EXIT_OK, EXIT_RUNTIME, EXIT_USAGE } from './commands/exit-codes.js';
import { reloadCommand } from './commands/reload.js';
import { reopenLogsCommand } from './commands/reopen-logs.js';
import { runCommand } from './commands/run.js';
import { statusCommand } from './commands/status.js';
import { systemdUnitCommand } from './commands/systemd-unit.js';
import { upgradeCommand } from './commands/upgrade.js';
import { COMMAND_USAGE, MAIN_USAGE, isCommandName, type CommandName } from './commands/usage.js';
import { UsageError } from './errors.js';

const COMMAND_MAIN: Record<CommandName, (args: readonly string[]) => Promise<number>> = {
  run: runCommand,
  check: checkCommand,
  demo: demoCommand,
  reload: reloadCommand,
  upgrade: upgradeCommand,
  status: statusCommand,
  'reopen-logs': reopenLogsCommand,
  bench: benchCommand,
  backend: backendCommand,
  config: configCommand,
  'systemd-unit': systemdUnitCommand,
};

/** The version in package.json (dist/cli.js → ../package.json). */
function version(): string {
  const text = readFileSync(new URL('../package.json', import.meta.url), 'utf8');
  const parsed: unknown = JSON.parse(text);
  const value = (parsed as { version?: unknown }).version;
  return typeof value === 'string' ? value : 'unknown';
}

async function main(argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  try {
    if (first === undefined) throw new UsageError('missing command');
    if (first === '-h' || first === '--help') {
      process.stdout.write(MAIN_USAGE);
      return EXIT_OK;
    }
    if (first === '-v' || first === '--version') {
      process.stdout.write(`${version()}\n`);
      return EXIT_OK;
    }
    if (first === 'help') {
      const topic = rest[0];
      if (topic === undefined) process.stdout.write(MAIN_USAGE);
      else if (isCommandName(topic)) process.stdout.write(COMMAND_USAGE[topic]);
      else throw new UsageError(`unknown command '${topic}'`);
      return EXIT_OK;
    }
    if (first.startsWith('-')) throw new UsageError(`unknown option '${first}'`);
    if (!isCommandName(first)) throw new UsageError(`unknown command '${first}'`);
    return await COMMAND_MAIN[first](rest);
  } catch (err) {
    if (err instanceof UsageError) {
      const usage = err.command !== undefined && isCommandName(err.command) ? COMMAND_USAGE[err.command] : MAIN_USAGE;
      process.stderr.write(`fulcrum: ${err.message}\n\n${usage}`);
      return EXIT_USAGE;
    }
    const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`fulcrum: unexpected error: ${detail}\n`);
    return EXIT_RUNTIME;
  }
}

// Exit explicitly: a command returns only once everything it started is
// stopped, and a stray handle must not keep a stopped balancer alive.
process.exit(await main(process.argv.slice(2)));
