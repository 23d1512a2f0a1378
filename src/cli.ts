#!/usr/bin/env node
// The `fulcrum` command line: dispatch to a command and turn its result into
// the exit code (0 ok, 1 runtime error, 2 usage or config error).
import { readFileSync } from 'node:fs';
import { EXIT_OK, EXIT_RUNTIME, EXIT_USAGE } from './commands/exit-codes.js';
import { COMMAND_USAGE, MAIN_USAGE, isCommandName, type CommandName } from './commands/usage.js';
import { UsageError } from './errors.js';

type CommandMain = (args: readonly string[]) => Promise<number>;

// Each command's module is loaded when it runs: `fulcrum status`, `reload` or
// `--version` need neither the engine nor the config schema, and loading every
// command cost each short command ~0.5 s of CPU before it did anything.
const COMMAND_MAIN: Record<CommandName, () => Promise<CommandMain>> = {
  run: async () => (await import('./commands/run.js')).runCommand,
  check: async () => (await import('./commands/check.js')).checkCommand,
  demo: async () => (await import('./commands/demo.js')).demoCommand,
  reload: async () => (await import('./commands/reload.js')).reloadCommand,
  upgrade: async () => (await import('./commands/upgrade.js')).upgradeCommand,
  status: async () => (await import('./commands/status.js')).statusCommand,
  'reopen-logs': async () => (await import('./commands/reopen-logs.js')).reopenLogsCommand,
  bench: async () => (await import('./bench/command.js')).benchCommand,
  backend: async () => (await import('./commands/backend.js')).backendCommand,
  config: async () => (await import('./commands/config.js')).configCommand,
  'systemd-unit': async () => (await import('./commands/systemd-unit.js')).systemdUnitCommand,
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
    const command = await COMMAND_MAIN[first]();
    return await command(rest);
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
