// Loading the config for a command: on failure, say why on stderr so the
// command can exit 2 (config errors are usage errors: fix the file, run again).
import { loadConfig } from '../config/load.js';
import type { FulcrumConfig } from '../config/types.js';
import { ConfigError, UsageError } from '../errors.js';

/** The config of `-c FILE`, which `command` requires: loaded, or undefined after saying why on stderr. */
export async function requiredConfig(command: 'check' | 'run', file: string | undefined): Promise<FulcrumConfig | undefined> {
  if (file === undefined) throw new UsageError('missing required option -c FILE', command);
  return loadConfigOrReport(file);
}

/**
 * Load and validate `file`. Returns the config, or undefined after writing to
 * stderr one `file:line:column: message` line per issue (ConfigError), or one
 * line naming the file when it could not be read at all.
 */
export async function loadConfigOrReport(file: string): Promise<FulcrumConfig | undefined> {
  try {
    return await loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(err.message.endsWith('\n') ? err.message : `${err.message}\n`);
      return undefined;
    }
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    const reason = err instanceof Error ? err.message : String(err);
    process.stderr.write(`${file}: cannot load config${code ? ` (${code})` : ''}: ${reason}\n`);
    return undefined;
  }
}
