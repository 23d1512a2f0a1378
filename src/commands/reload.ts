// `fulcrum reload`: ask a running Fulcrum (through its admin API) to re-read
// its config file. Exit 0 when applied, 2 when the new config is invalid (the
// running one stays; the reasons go to stderr), 1 when the API cannot be
// reached or refuses the request.
import { describeChanges } from '../control/config-diff.js';
import type { ReloadOutcome } from '../control/types.js';
import { adminCommandFailed, apiErrorText, callApi, checkSameConfig, resolveTarget } from './admin-client.js';
import { EXIT_OK, EXIT_RUNTIME, EXIT_USAGE } from './exit-codes.js';
import { helpShown, parseCommandOptions } from './usage.js';

export async function reloadCommand(args: readonly string[]): Promise<number> {
  const options = parseCommandOptions('reload', args, ['config', 'admin', 'token-file', 'help']);
  if (helpShown('reload', options)) return EXIT_OK;
  try {
    const target = await resolveTarget(options);
    await checkSameConfig(target);
    const response = await callApi(target, 'POST', '/api/reload');
    const outcome = response.body as ReloadOutcome;
    if (response.status === 200 && outcome.ok) {
      process.stdout.write(`reloaded: generation ${outcome.generation}; ${describeChanges(outcome)}\n`);
      for (const warning of outcome.warnings ?? []) process.stderr.write(`fulcrum: warning: ${warning}\n`);
      return EXIT_OK;
    }
    if (response.status === 422 && !outcome.ok) {
      process.stderr.write(`fulcrum: reload rejected, the running config stays:\n${outcome.errors.map((e) => `  ${e}\n`).join('')}`);
      return EXIT_USAGE;
    }
    process.stderr.write(`fulcrum: reload failed: ${apiErrorText(response)}\n`);
    return EXIT_RUNTIME;
  } catch (err) {
    return adminCommandFailed(err);
  }
}
