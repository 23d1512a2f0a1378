// `fulcrum check -c FILE`: validate a config without starting anything.
import { EXIT_OK, EXIT_USAGE } from './exit-codes.js';
import { requiredConfig } from './config-file.js';
import { helpShown, parseCommandOptions } from './usage.js';

export async function checkCommand(args: readonly string[]): Promise<number> {
  const options = parseCommandOptions('check', args, ['config', 'help']);
  if (helpShown('check', options)) return EXIT_OK;
  const config = await requiredConfig('check', options.config);
  if (config === undefined) return EXIT_USAGE;
  const n = config.services.length;
  process.stdout.write(`${options.config}: OK (${n} ${n === 1 ? 'service' : 'services'})\n`);
  return EXIT_OK;
}
