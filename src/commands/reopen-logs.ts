// `fulcrum reopen-logs`: ask a running Fulcrum (through its admin API) to
// reopen its connection log file, for logrotate's postrotate (as SIGUSR1).
// Exit 0 when reopened, 1 when it cannot be, or the API cannot be reached.
import { AdminUnreachable } from '../errors.js';
import { apiErrorText, callApi, checkSameConfig, resolveTarget } from './admin-client.js';
import { EXIT_OK, EXIT_RUNTIME } from './exit-codes.js';
import { helpShown, parseCommandOptions } from './usage.js';

export async function reopenLogsCommand(args: readonly string[]): Promise<number> {
  const options = parseCommandOptions('reopen-logs', args, ['config', 'admin', 'token-file', 'help']);
  if (helpShown('reopen-logs', options)) return EXIT_OK;
  try {
    const target = await resolveTarget(options);
    await checkSameConfig(target);
    const response = await callApi(target, 'POST', '/api/reopen-logs');
    if (response.status === 200) {
      process.stdout.write('connection log reopened\n');
      return EXIT_OK;
    }
    process.stderr.write(`fulcrum: reopen-logs failed: ${apiErrorText(response)}\n`);
    return EXIT_RUNTIME;
  } catch (err) {
    if (!(err instanceof AdminUnreachable)) throw err;
    process.stderr.write(`fulcrum: ${err.message}\n`);
    return EXIT_RUNTIME;
  }
}
