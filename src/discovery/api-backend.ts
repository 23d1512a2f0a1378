// A backend added through the admin API (POST /api/services/NAME/backends),
// validated exactly as the same entry written in the config file would be:
// the body is put in the service as the file wrote it (its health_check,
// send_proxy, slow_start... so overrides merge the same way) and the result
// goes through the config validator. Only an IP address is taken here: a
// name belongs in the file, where it is re-resolved (DNS discovery).
import { parseConfig } from '../config/load.js';
import type { BackendConfig, ServiceConfig } from '../config/types.js';
import { ConfigError } from '../errors.js';

/** The keys a body may have: a backend entry of the file, as the file spells them. */
const KEYS = ['address', 'weight', 'backup', 'max_connections', 'slow_start', 'send_proxy', 'health_check'] as const;

export type ApiBackendResult =
  | { ok: true; backend: BackendConfig; /** the entry as written (for `fulcrum config dump`) */ written: Record<string, unknown> }
  | { ok: false; errors: string[] };

/** Validate `body` as a new backend of `service` (defined in `configFile`, which relative paths are resolved against). */
export function buildApiBackend(service: ServiceConfig, configFile: string, body: unknown): ApiBackendResult {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, errors: ['expected a JSON object such as {"address": "10.0.0.5:5432", "weight": 2}'] };
  }
  const entry = body as Record<string, unknown>;
  const unknown = Object.keys(entry).filter((k) => !(KEYS as readonly string[]).includes(k));
  if (unknown.length > 0) return { ok: false, errors: [`unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')}; expected ${KEYS.join(', ')}`] };
  if (entry.address === undefined) return { ok: false, errors: ['missing "address" (ip:port or [v6]:port)'] };
  // A check's credentials name a file or a variable of this host and are sent to the backend:
  // through the API, anyone with the token could point one at their own server and read them.
  const check = entry.health_check;
  if (typeof check === 'object' && check !== null && ('password_file' in check || 'password_env' in check)) {
    return { ok: false, errors: ['health_check.password_file and password_env cannot be set through the API (they would send a file or a variable of this host to the new backend); the service\'s own check credentials apply, or add the backend in the config file'] };
  }
  const written = service.written ?? { name: service.name, listen: service.listen.text, protocol: service.protocol };
  // A backup alone would be refused ("every backend is a backup"): a primary stands beside it, only for the check.
  const companion = entry.backup === true ? [{ address: entry.address === '127.0.0.2:1' ? '127.0.0.3:1' : '127.0.0.2:1' }] : [];
  const text = JSON.stringify({ services: [{ ...written, backends: [entry, ...companion] }] });
  let parsed;
  try {
    parsed = parseConfig(text, configFile);
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, errors: err.issues.map((i) => i.message.replace(/ in service "[^"]*" \(also at line \d+\)/, '')) };
    throw err;
  }
  const built = parsed.services[0]!;
  if ((built.discovery?.length ?? 0) > 0) {
    return { ok: false, errors: [`address ${JSON.stringify(entry.address)} is a host name: the API takes an IP address; a name belongs in the config file, where it is re-resolved`] };
  }
  return { ok: true, backend: { ...built.backends[0]!, origin: { kind: 'api' } }, written: entry };
}
