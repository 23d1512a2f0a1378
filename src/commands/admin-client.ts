// How `fulcrum reload` and `fulcrum status` reach a running Fulcrum: the admin
// address and token come from --admin / --token-file / FULCRUM_ADMIN_TOKEN, or
// from the config file (-c), or the defaults (admin.listen's default in the
// schema, no token).
// The config file is read leniently here: reload must still find the API when
// the file it is about to reload is invalid (the server then says why). But
// a file that cannot be read, or whose YAML is broken, is an error: the
// address it names is unknown, and the default address may be another
// Fulcrum's (the one this command would then show, or reload).
import { request } from 'node:http';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseEndpoint } from '../config/address.js';
import { defaultAdminListen } from '../config/admin.js';
import { YamlSource } from '../config/source.js';
import { AdminUnreachable, ConfigError, type ConfigIssue } from '../errors.js';
import { EXIT_RUNTIME, EXIT_USAGE } from './exit-codes.js';

export const DEFAULT_ADMIN = defaultAdminListen();
export const TOKEN_ENV = 'FULCRUM_ADMIN_TOKEN';

export interface AdminTarget {
  /** http://host:port */
  base: string;
  token: string | undefined;
  /** The config file given with -c (absolute), to check the server runs that one. */
  configFile: string | undefined;
}

export interface TargetOptions {
  admin: string | undefined;
  config: string | undefined;
  tokenFile: string | undefined;
}

/** Work out where the admin API is and which token to send. Throws AdminUnreachable on an unusable option. */
export async function resolveTarget(options: TargetOptions): Promise<AdminTarget> {
  let listen = DEFAULT_ADMIN;
  let token: string | undefined;
  let configFile: string | undefined;
  if (options.config !== undefined) {
    configFile = resolve(options.config);
    const fromFile = await adminSection(configFile);
    if (fromFile.listen !== undefined) listen = fromFile.listen;
    token = fromFile.token;
  }
  if (options.admin !== undefined) listen = options.admin.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  if (process.env[TOKEN_ENV]) token = process.env[TOKEN_ENV]!.trim();
  if (options.tokenFile !== undefined) token = await readToken(resolve(options.tokenFile));
  const parsed = parseEndpoint(listen, 'listen');
  if (!parsed.ok) throw new AdminUnreachable(`admin address: ${parsed.message}`);
  // A wildcard listen is reached through loopback.
  const host = parsed.endpoint.host === '0.0.0.0' ? '127.0.0.1' : parsed.endpoint.host === '::' ? '::1' : parsed.endpoint.host;
  const base = parsed.endpoint.family === 6 ? `http://[${host}]:${parsed.endpoint.port}` : `http://${host}:${parsed.endpoint.port}`;
  return { base, token, configFile };
}

/**
 * admin.listen and the token from a config file, whatever else in it is wrong.
 * Throws ConfigError (file:line:column) when the file cannot be read, is not
 * well-formed YAML, or holds an admin section that cannot be used.
 */
async function adminSection(file: string): Promise<{ listen?: string; token?: string }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError([{ file, line: 0, column: 0, message: `cannot read the config (${code}) to find the admin address` }], { cause: err });
  }
  const source = new YamlSource(text, file);
  const broken = [...source.syntaxIssues(), ...source.aliasIssues()];
  if (broken.length > 0) throw new ConfigError(broken.map(whileFinding));
  const data = source.toData();
  if (data === null || data === undefined) return {}; // an empty file: nothing says where, the default applies
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError([whileFinding({ file, line: 1, column: 1, message: 'not a Fulcrum config: expected a mapping of keys (admin:, services:...)' })]);
  }
  const admin = (data as { admin?: unknown }).admin;
  if (admin === undefined || admin === null) return {};
  if (typeof admin !== 'object' || Array.isArray(admin)) {
    throw new ConfigError([whileFinding(source.issue(['admin'], 'admin must be a mapping (listen, token, token_file)'))]);
  }
  const section = admin as { listen?: unknown; token?: unknown; token_file?: unknown };
  if (section.listen !== undefined && typeof section.listen !== 'string') {
    throw new ConfigError([whileFinding(source.issue(['admin', 'listen'], 'admin.listen must be host:port'))]);
  }
  const result: { listen?: string; token?: string } = {};
  if (typeof section.listen === 'string') result.listen = section.listen;
  if (typeof section.token === 'string') result.token = section.token;
  else if (typeof section.token_file === 'string') result.token = await readToken(resolve(dirname(file), section.token_file));
  return result;
}

/** An issue, said to be what stopped the search for the admin address. */
function whileFinding(issue: ConfigIssue): ConfigIssue {
  return { ...issue, message: `${issue.message} (cannot find the admin address in this file)` };
}

async function readToken(file: string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (err) {
    throw new AdminUnreachable(`cannot read the token file ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

export interface ApiResponse {
  status: number;
  body: unknown;
}

/** One request to the admin API (a POST sends `body` as JSON, `{}` by default); rejects with AdminUnreachable when there is no HTTP answer. */
export function callApi(target: AdminTarget, method: 'GET' | 'POST' | 'DELETE', path: string, timeoutMs = 30_000, body: unknown = {}): Promise<ApiResponse> {
  const url = new URL(path, target.base);
  return new Promise((resolvePromise, reject) => {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (method === 'POST') headers['Content-Type'] = 'application/json';
    if (target.token !== undefined) headers.Authorization = `Bearer ${target.token}`;
    const req = request(url, { method, headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', (err) => reject(new AdminUnreachable(`reading the answer of ${url.href}: ${err.message}`)));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text) as unknown;
        } catch {
          // keep the text
        }
        resolvePromise({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) =>
      reject(new AdminUnreachable(`cannot reach the admin API at ${target.base}: ${err.code ?? err.message}`)),
    );
    req.end(method === 'POST' ? JSON.stringify(body) : undefined);
  });
}

/**
 * The exit code of an admin command that failed before the API answered: -c
 * FILE that does not say where the API is exits 2 (never the default address,
 * maybe another Fulcrum's); an API that cannot be reached exits 1. Anything
 * else is rethrown.
 */
export function adminCommandFailed(err: unknown): number {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    return EXIT_USAGE;
  }
  if (!(err instanceof AdminUnreachable)) throw err;
  process.stderr.write(`fulcrum: ${err.message}\n`);
  return EXIT_RUNTIME;
}

/** The `error.message` of an API error answer, or the status. */
export function apiErrorText(response: ApiResponse): string {
  const message = (response.body as { error?: { message?: unknown } } | undefined)?.error?.message;
  return typeof message === 'string' ? `${message} (HTTP ${response.status})` : `HTTP ${response.status}`;
}

/** Check that the API serves the config file given with -c (another Fulcrum may hold the address). */
export async function checkSameConfig(target: AdminTarget): Promise<void> {
  if (target.configFile === undefined) return;
  const response = await callApi(target, 'GET', '/api/status');
  if (response.status !== 200) throw new AdminUnreachable(`admin API at ${target.base}: ${apiErrorText(response)}`);
  const served = (response.body as { config?: unknown }).config;
  if (served !== target.configFile) {
    throw new AdminUnreachable(`the Fulcrum at ${target.base} runs ${String(served)}, not ${target.configFile}`);
  }
}
