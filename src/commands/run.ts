// `fulcrum run -c FILE`: balance traffic until SIGINT/SIGTERM (lifecycle in serve.ts).
import { createLogger } from '../logger.js';
import { EXIT_OK, EXIT_USAGE } from './exit-codes.js';
import { loadConfigOrReport } from './config-file.js';
import { serve } from './serve.js';
import { UsageError } from '../errors.js';
import { COMMAND_USAGE, parseCommandOptions } from './usage.js';

export async function runCommand(args: readonly string[]): Promise<number> {
  const options = parseCommandOptions('run', args, ['config', 'log-level', 'help']);
  if (options.help) {
    process.stdout.write(COMMAND_USAGE.run);
    return EXIT_OK;
  }
  if (options.config === undefined) throw new UsageError('missing required option -c FILE', 'run');
  const config = await loadConfigOrReport(options.config);
  if (config === undefined) return EXIT_USAGE;
  const logger = createLogger(options.logLevel ?? config.log.level);
  return serve(config, logger);
}
