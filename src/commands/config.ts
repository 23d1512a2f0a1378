// `fulcrum config dump`: print the running config as YAML (GET /api/config/dump):
// the config file as loaded with the backends added through the admin API, so
// that saving it over the file keeps them across the next reload (which
// otherwise rebuilds from the file). The output is valid `fulcrum check` input.
import { UsageError } from '../errors.js';
import { adminCommandFailed, apiErrorText, callApi, checkSameConfig, resolveTarget } from './admin-client.js';
import { EXIT_OK, EXIT_RUNTIME } from './exit-codes.js';
import { helpShown, parseCommandOptions } from './usage.js';

export async function configCommand(args: readonly string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === '-h' || sub === '--help') {
    helpShown('config', { help: true });
    return EXIT_OK;
  }
  if (sub !== 'dump') throw new UsageError(sub === undefined ? 'missing subcommand; expected dump' : `unknown subcommand '${sub}'; expected dump`, 'config');
  const options = parseCommandOptions('config', rest, ['config', 'admin', 'token-file', 'help']);
  if (helpShown('config', options)) return EXIT_OK;
  try {
    const target = await resolveTarget(options);
    await checkSameConfig(target);
    const response = await callApi(target, 'GET', '/api/config/dump', 10_000);
    if (response.status !== 200 || typeof response.body !== 'string') {
      process.stderr.write(`fulcrum: config dump: ${apiErrorText(response)}\n`);
      return EXIT_RUNTIME;
    }
    process.stdout.write(response.body);
    return EXIT_OK;
  } catch (err) {
    return adminCommandFailed(err);
  }
}
