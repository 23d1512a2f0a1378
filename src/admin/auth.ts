// Who may talk to the admin API. With a token configured, every request but
// the status page's static shell must carry `Authorization: Bearer TOKEN`
// (RFC 6750); the comparison takes the same time whatever the guess. Without
// a token (loopback only, enforced by config validation), two browser
// attacks remain: a page on another site POSTing to the API (closed in
// server.ts: a body must be JSON, which a cross-site page cannot send without
// a CORS preflight this server never grants, and an empty POST without a
// Content-Type is refused when its Origin header names another origin), and
// DNS rebinding (closed here: the Host header must be an IP literal or localhost).
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';

export type AuthResult = { ok: true } | { ok: false; status: 401 | 403; code: string; message: string; challenge?: string };

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

/** Check a request against `token` (undefined: no token configured). */
export function authorize(req: IncomingMessage, token: string | undefined): AuthResult {
  if (token === undefined) {
    if (!hostIsLiteral(req.headers.host)) {
      return { ok: false, status: 403, code: 'forbidden_host', message: 'the Host header must be an IP address or localhost (DNS rebinding protection)' };
    }
    return { ok: true };
  }
  const header = req.headers.authorization;
  const match = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header);
  if (!match) {
    return {
      ok: false,
      status: 401,
      code: 'unauthorized',
      message: 'this admin API requires a bearer token: Authorization: Bearer TOKEN',
      challenge: 'Bearer realm="fulcrum"',
    };
  }
  // Hashing first makes both sides the same length, so timingSafeEqual applies.
  if (!timingSafeEqual(digest(match[1]!), digest(token))) {
    return {
      ok: false,
      status: 401,
      code: 'invalid_token',
      message: 'the bearer token is not the configured admin token',
      challenge: 'Bearer realm="fulcrum", error="invalid_token"',
    };
  }
  return { ok: true };
}

function hostIsLiteral(host: string | undefined): boolean {
  if (host === undefined) return true; // HTTP/1.0 clients (curl -0, probes) send none; browsers always do
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  return name === 'localhost' || isIP(name) !== 0;
}
