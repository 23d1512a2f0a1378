// The `admin:` section: where the admin HTTP server listens and the bearer
// token that guards it. What the schema cannot say is checked here: the listen
// address parses, token and token_file are not both given, a token file can be
// read, a token is a well-formed bearer token (RFC 6750 b64token) long enough
// to resist guessing, and a server listening beyond loopback has a token
// (the API can drain backends and reload the config: it must not be open).
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { ConfigIssue } from '../errors.js';
import { parseEndpoint } from './address.js';
import { readConfigSchema } from './schema.js';
import type { YamlSource } from './source.js';
import type { AdminConfig, Endpoint } from './types.js';

/** RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=". */
const BEARER_TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
export const TOKEN_LENGTH = { min: 16, max: 512 } as const;

interface RawAdmin {
  listen?: unknown;
  token?: unknown;
  token_file?: unknown;
  max_connections?: unknown;
}

export type AdminResult = { issues: ConfigIssue[]; admin: AdminConfig | undefined };

/** admin.listen's default, as the schema writes it (the one place it is written). */
export function defaultAdminListen(): string {
  const schema = readConfigSchema() as { properties: { admin: { properties: { listen: { default: string } } } } };
  return schema.properties.admin.properties.listen.default;
}

/** Whether `endpoint` is reachable only from this host (127.0.0.0/8 or ::1). */
export function isLoopback(endpoint: Endpoint): boolean {
  return endpoint.family === 4 ? endpoint.host.startsWith('127.') : endpoint.host === '::1';
}

/**
 * Check and build the admin section. `raw` is the section after the schema
 * filled its defaults (undefined or not a mapping when the schema reported it).
 * Reads token_file (relative to the config file) synchronously: validation
 * must see the token to decide whether a non-loopback listen is allowed.
 */
export function checkAdmin(raw: unknown, source: YamlSource): AdminResult {
  const issues: ConfigIssue[] = [];
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { issues, admin: undefined };
  const section = raw as RawAdmin;
  const at = ['admin'];
  // listen is always there: the schema fills in its default.
  const parsed = parseEndpoint(section.listen, 'listen');
  if (!parsed.ok) issues.push(source.issue([...at, 'listen'], parsed.message));

  let token: string | undefined;
  let tokenFile: string | undefined;
  if (section.token !== undefined && section.token_file !== undefined) {
    issues.push(source.issue([...at, 'token_file'], 'give token or token_file, not both', 'key'));
  } else if (typeof section.token === 'string') {
    token = section.token;
    const problem = tokenProblem(token);
    if (problem) issues.push(source.issue([...at, 'token'], `admin.token ${problem}`));
  } else if (typeof section.token_file === 'string') {
    tokenFile = resolve(dirname(resolve(source.file)), section.token_file);
    try {
      token = readFileSync(tokenFile, 'utf8').trim();
      const problem = tokenProblem(token);
      // The message names the file, never its content.
      if (problem) issues.push(source.issue([...at, 'token_file'], `the token in admin.token_file ${section.token_file} ${problem}`));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      const relative = section.token_file.startsWith('/') ? '' : ', relative to the config file';
      issues.push(source.issue([...at, 'token_file'], `cannot read admin.token_file ${section.token_file} (${code}${relative})`));
    }
  }
  if (!parsed.ok) return { issues, admin: undefined };
  if (!isLoopback(parsed.endpoint) && section.token === undefined && section.token_file === undefined) {
    issues.push(
      source.issue(
        [...at, 'listen'],
        `admin.listen ${parsed.endpoint.text} is not a loopback address: set admin.token or admin.token_file (the API can drain backends and reload the config)`,
      ),
    );
  }
  // The schema bounds max_connections and fills in its default; the section
  // is used only when the schema passed (validate.ts).
  const maxConnections = Number(section.max_connections);
  return { issues, admin: issues.length > 0 ? undefined : { listen: parsed.endpoint, token, tokenFile, maxConnections } };
}

/** Why `token` is not acceptable, or undefined. Never echoes the token. */
function tokenProblem(token: string): string | undefined {
  if (token.length < TOKEN_LENGTH.min) return `must be at least ${TOKEN_LENGTH.min} characters (it has ${token.length})`;
  if (token.length > TOKEN_LENGTH.max) return `must be at most ${TOKEN_LENGTH.max} characters`;
  if (!BEARER_TOKEN.test(token)) return 'may only hold A-Z a-z 0-9 - . _ ~ + / (then = padding), as a bearer token (RFC 6750)';
  return undefined;
}
