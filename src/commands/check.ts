// `fulcrum check -c FILE`: validate a config without starting anything.
import { EXIT_OK, EXIT_USAGE } from './exit-codes.js';
import { loadConfigOrReport } from './config-file.js';
import { UsageError } from '../errors.js';
import { COMMAND_USAGE, parseCommandOptions } from './usage.js';

export async function checkCommand(args: readonly string[]): Promise<number> {
  const options = parseCommandOptions('check', args, ['config', 'help']);
  if (options.help) {
    process.stdout.write(COMMAND_USAGE.check);
    return EXIT_OK;
  }
  if (options.config === undefined) throw new UsageError('missing required option -c FILE', 'check');
  const config = await loadConfigOrReport(options.config);
  if (config === undefined) return EXIT_USAGE;
  const n = config.services.length;
  process.stdout.write(`${options.config}: OK (${n} ${n === 1 ? 'service' : 'services'})\n`);
  return EXIT_OK;
}
