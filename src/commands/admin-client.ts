// How `fulcrum reload` and `fulcrum status` reach a running Fulcrum: the admin
// address and token come from --admin / --token-file / FULCRUM_ADMIN_TOKEN, or
// from the config file (-c), or the defaults (127.0.0.1:9090, no token).
// The config file is read leniently here: reload must still find the API when
// the file it is about to reload is invalid (the server then says why).
import { request } from 'node:http';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parseEndpoint } from '../config/address.js';
import { AdminUnreachable } from '../errors.js';

export const DEFAULT_ADMIN = '127.0.0.1:9090';
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

/** admin.listen and the token from a config file, whatever else in it is wrong. */
async function adminSection(file: string): Promise<{ listen?: string; token?: string }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new AdminUnreachable(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}) to find the admin address`);
  }
  let data: unknown;
  try {
    data = parseYaml(text, { uniqueKeys: false });
  } catch {
    return {}; // not YAML: the defaults, and the server will say what is wrong
  }
  const admin = (data as { admin?: { listen?: unknown; token?: unknown; token_file?: unknown } } | null)?.admin;
  if (typeof admin !== 'object' || admin === null) return {};
  const result: { listen?: string; token?: string } = {};
  if (typeof admin.listen === 'string') result.listen = admin.listen;
  if (typeof admin.token === 'string') result.token = admin.token;
  else if (typeof admin.token_file === 'string') result.token = await readToken(resolve(dirname(file), admin.token_file));
  return result;
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

/** One request to the admin API; rejects with AdminUnreachable when there is no HTTP answer. */
export function callApi(target: AdminTarget, method: 'GET' | 'POST', path: string, timeoutMs = 30_000): Promise<ApiResponse> {
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
    req.end(method === 'POST' ? '{}' : undefined);
  });
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
