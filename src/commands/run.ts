// `fulcrum run -c FILE`: balance traffic until SIGINT/SIGTERM (lifecycle in serve.ts).
import { createLogger } from '../logger.js';
import { EXIT_OK, EXIT_USAGE } from './exit-codes.js';
import { requiredConfig } from './config-file.js';
import { serve } from './serve.js';
import { helpShown, parseCommandOptions } from './usage.js';

export async function runCommand(args: readonly string[]): Promise<number> {
  const options = parseCommandOptions('run', args, ['config', 'log-level', 'help']);
  if (helpShown('run', options)) return EXIT_OK;
  const config = await requiredConfig('run', options.config);
  if (config === undefined) return EXIT_USAGE;
  const logger = createLogger(options.logLevel ?? config.log.level, undefined, config.log.format);
  // Upgradable (SIGUSR2, `fulcrum upgrade`): the new process runs this same command line.
  return serve(config, logger, { upgrade: {} });
}
