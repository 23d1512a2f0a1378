// `fulcrum backend add|remove|drain|enable|maint|weight SERVICE ADDRESS [...]`:
// change a running Fulcrum's backends through its admin API, so an operator
// never needs curl. Address and token as for `fulcrum reload` (admin-client.ts).
// Every change lasts until the next reload, which rebuilds the backends from
// the config file (the file wins); `fulcrum config dump` writes the running set.
// Exit 0 done, 1 refused by the server or unreachable, 2 usage.
import { parseArgs } from 'node:util';
import { UsageError } from '../errors.js';
import { adminCommandFailed, apiErrorText, callApi, checkSameConfig, resolveTarget } from './admin-client.js';
import { EXIT_OK, EXIT_RUNTIME } from './exit-codes.js';
import { COMMAND_USAGE } from './usage.js';

const ACTIONS = ['add', 'remove', 'drain', 'enable', 'maint', 'weight'] as const;
type Action = (typeof ACTIONS)[number];

export async function backendCommand(args: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string', short: 'c' },
        admin: { type: 'string' },
        'token-file': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        weight: { type: 'string' },
        backup: { type: 'boolean' },
        'send-proxy': { type: 'string' },
        'max-connections': { type: 'string' },
        'slow-start': { type: 'string' },
        'health-check': { type: 'string' },
      },
    });
  } catch (err) {
    throw new UsageError((err instanceof Error ? err.message : String(err)).split('. ')[0]!, 'backend');
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    process.stdout.write(COMMAND_USAGE.backend);
    return EXIT_OK;
  }
  const [action, service, address, ...rest] = positionals;
  if (action === undefined || !(ACTIONS as readonly string[]).includes(action)) {
    throw new UsageError(action === undefined ? 'missing action' : `unknown action '${action}'; expected ${ACTIONS.join(', ')}`, 'backend');
  }
  if (service === undefined || address === undefined) throw new UsageError(`backend ${action} needs SERVICE and ADDRESS`, 'backend');
  const expected = action === 'weight' ? 1 : 0;
  if (rest.length !== expected) throw new UsageError(action === 'weight' ? 'backend weight needs SERVICE ADDRESS WEIGHT' : `unexpected argument '${rest[0]}'`, 'backend');
  const addOptions = ['weight', 'backup', 'send-proxy', 'max-connections', 'slow-start', 'health-check'] as const;
  if (action !== 'add') {
    const misplaced = addOptions.find((o) => values[o] !== undefined);
    if (misplaced !== undefined) throw new UsageError(`--${misplaced} goes with backend add`, 'backend');
  }

  const path = `/api/services/${encodeURIComponent(service)}/backends`;
  let request: { method: 'POST' | 'DELETE'; path: string; body?: unknown };
  switch (action as Action) {
    case 'add':
      request = { method: 'POST', path, body: addBody(address, values) };
      break;
    case 'remove':
      request = { method: 'DELETE', path: `${path}/${encodeURIComponent(address)}` };
      break;
    case 'weight':
      request = { method: 'POST', path: `${path}/${encodeURIComponent(address)}/weight`, body: { weight: integer(rest[0]!, 'WEIGHT') } };
      break;
    default:
      request = { method: 'POST', path: `${path}/${encodeURIComponent(address)}/${action}` };
  }

  try {
    const target = await resolveTarget({ config: values.config, admin: values.admin, tokenFile: values['token-file'] });
    await checkSameConfig(target);
    const response = await callApi(target, request.method, request.path, 30_000, request.body ?? {});
    if (response.status < 200 || response.status >= 300) {
      process.stderr.write(`fulcrum: backend ${action} ${service} ${address}: ${apiErrorText(response)}\n`);
      return EXIT_RUNTIME;
    }
    const body = response.body as { backend?: { state?: string; weight?: number; origin?: string }; appliedMs?: number; note?: string; draining?: number };
    const done: Record<Action, string> = {
      add: `added ${address} to ${service}${body.backend?.state ? ` (state ${body.backend.state})` : ''}`,
      remove: `removed ${address} from ${service}: it drains${body.draining ? ` (${body.draining} open connection${body.draining === 1 ? '' : 's'} continue)` : ''}`,
      drain: `${service} ${address}: drain`,
      enable: `${service} ${address}: enabled (health decides)`,
      maint: `${service} ${address}: maint`,
      weight: `${service} ${address}: weight ${body.backend?.weight ?? rest[0]}`,
    };
    process.stdout.write(`${done[action as Action]}${body.appliedMs !== undefined ? ` in ${body.appliedMs} ms` : ''}\n`);
    if (body.note) process.stdout.write(`note: ${body.note}\n`);
    return EXIT_OK;
  } catch (err) {
    return adminCommandFailed(err);
  }
}

/** The POST body of `backend add`: the entry as the config file would spell it (the server validates it). */
function addBody(address: string, values: Record<string, string | boolean | undefined>): Record<string, unknown> {
  const body: Record<string, unknown> = { address };
  if (values.weight !== undefined) body.weight = integer(String(values.weight), '--weight');
  if (values.backup === true) body.backup = true;
  if (values['send-proxy'] !== undefined) body.send_proxy = values['send-proxy'];
  if (values['max-connections'] !== undefined) body.max_connections = integer(String(values['max-connections']), '--max-connections');
  if (values['slow-start'] !== undefined) body.slow_start = values['slow-start'];
  if (values['health-check'] !== undefined) {
    try {
      body.health_check = JSON.parse(String(values['health-check'])) as unknown;
    } catch {
      throw new UsageError(`--health-check: expected JSON such as '{"type":"tcp","port":5433}'`, 'backend');
    }
  }
  return body;
}

function integer(text: string, what: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${what}: expected a whole number, got '${text}'`, 'backend');
  return Number(text);
}
