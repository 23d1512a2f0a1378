// `fulcrum upgrade`: ask a running Fulcrum (through its admin API) to start
// the installed version with the same command line and hand it its sockets
// (src/upgrade/). Exit 0 once the new process is ready (it prints its pid) and
// the old one drains; 1 when the new process failed (the old one keeps
// serving) or the API cannot be reached or refuses.
import { READY_TIMEOUT_MS } from '../upgrade/successor.js';
import { adminCommandFailed, apiErrorText, callApi, checkSameConfig, resolveTarget } from './admin-client.js';
import { EXIT_OK, EXIT_RUNTIME } from './exit-codes.js';
import { helpShown, parseCommandOptions } from './usage.js';

export async function upgradeCommand(args: readonly string[]): Promise<number> {
  const options = parseCommandOptions('upgrade', args, ['config', 'admin', 'token-file', 'help']);
  if (helpShown('upgrade', options)) return EXIT_OK;
  try {
    const target = await resolveTarget(options);
    await checkSameConfig(target);
    // The answer comes once the new process is ready, or failed, or timed out.
    const response = await callApi(target, 'POST', '/api/upgrade', READY_TIMEOUT_MS + 30_000);
    const body = response.body as { ok?: boolean; pid?: number };
    if (response.status === 200 && body.ok === true) {
      process.stdout.write(`upgraded: new process ${body.pid} is serving; the old one drains and exits\n`);
      return EXIT_OK;
    }
    process.stderr.write(`fulcrum: upgrade failed: ${apiErrorText(response)}\n`);
    return EXIT_RUNTIME;
  } catch (err) {
    return adminCommandFailed(err);
  }
}
