// Addresses in the config: `host:port` or `[v6]:port`. Hosts are numeric IP
// literals, plus `localhost` (127.0.0.1) and, for listen addresses, `*`
// (0.0.0.0). A backend entry may also name a DNS host (parseBackendTarget):
// it is resolved at run time by src/discovery/, never at load, so a config
// never needs DNS to start.
import { isIPv4, isIPv6 } from 'node:net';
import type { Endpoint } from './types.js';
import { describeValue } from './describe.js';

/** listen: where clients connect (wildcards allowed). backend: where Fulcrum connects (a specific host). */
export type AddressRole = 'listen' | 'backend';

export type EndpointResult = { ok: true; endpoint: Endpoint } | { ok: false; message: string };

const EXAMPLE: Record<AddressRole, string> = { listen: '127.0.0.1:6432', backend: '127.0.0.1:5432' };

/** Parse what the YAML held as an address for `role`. */
export function parseEndpoint(value: unknown, role: AddressRole): EndpointResult {
  const what = role === 'listen' ? 'listen address' : 'address';
  if (typeof value !== 'string') {
    return fail(`bad ${what} ${describeValue(value)}: expected host:port, e.g. ${EXAMPLE[role]}`);
  }
  const bad = (why: string): EndpointResult => fail(`bad ${what} ${JSON.stringify(value)}: ${why}`);

  let host: string;
  let portText: string;
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close < 0 || value[close + 1] !== ':') return bad('expected [v6]:port, e.g. [::1]:7000');
    host = value.slice(1, close);
    portText = value.slice(close + 2);
    if (host.includes('%')) return bad('IPv6 zone ids (%eth0) are not supported');
    if (!isIPv6(host)) return bad(`"${host}" is not an IPv6 address`);
  } else {
    const colon = value.lastIndexOf(':');
    if (colon < 0) return bad(`expected host:port, e.g. ${EXAMPLE[role]}`);
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
    if (host.includes(':')) return bad(`an IPv6 address goes in brackets, e.g. [${host}]:${portText}`);
    if (host === '') return bad(`missing host; expected host:port, e.g. ${EXAMPLE[role]}`);
    if (host === 'localhost') host = '127.0.0.1';
    else if (host === '*' && role === 'listen') host = '0.0.0.0';
    else if (!isIPv4(host)) {
      const allowed = role === 'listen' ? 'an IP address, localhost or * (a listen address is never resolved)' : 'an IP address, localhost or a host name';
      return bad(`host "${host}" is not ${allowed}`);
    }
  }

  if (!/^\d+$/.test(portText)) return bad(`port ${JSON.stringify(portText)} is not a number; expected 1 to 65535`);
  const port = Number(portText);
  if (port < 1 || port > 65535) return fail(`port ${portText} out of range in ${what} ${JSON.stringify(value)}; expected 1 to 65535`);

  let family: 4 | 6 = isIPv6(host) ? 6 : 4;
  // WHATWG URL serialises IPv6 in the RFC 5952 form (lowercase, longest zero run compressed).
  if (family === 6) host = new URL(`http://[${host}]/`).hostname.slice(1, -1);
  // An IPv4-mapped address (::ffff:127.0.0.1) is that IPv4 address: written, shown and connected to as one.
  const mapped = family === 6 ? unmappedIpv4(host) : undefined;
  if (mapped !== undefined) {
    host = mapped;
    family = 4;
  }
  if (role === 'backend' && (host === '0.0.0.0' || host === '::')) {
    return bad(`a backend needs a specific host, not the wildcard ${host}`);
  }
  const text = family === 6 ? `[${host}]:${port}` : `${host}:${port}`;
  return { ok: true, endpoint: { host, port, family, text } };
}

/** The IPv4 address of an IPv4-mapped IPv6 address in RFC 5952 form (`::ffff:7f00:1` -> `127.0.0.1`); undefined for any other. */
export function unmappedIpv4(host: string): string | undefined {
  const match = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host) ?? /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host);
  if (match === null) return undefined;
  if (match[2] === undefined) return match[1];
  const high = parseInt(match[1]!, 16);
  const low = parseInt(match[2], 16);
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
}

/** Whether two listen endpoints would take the same connections: same port and family, and equal or one a wildcard. */
export function endpointsOverlap(a: Endpoint, b: Endpoint): boolean {
  if (a.port !== b.port || a.family !== b.family) return false;
  return a.host === b.host || isWildcard(a) || isWildcard(b);
}

export function isWildcard(endpoint: Endpoint): boolean {
  return endpoint.host === '0.0.0.0' || endpoint.host === '::';
}

function fail(message: string): EndpointResult {
  return { ok: false, message };
}

/** A backend entry's `address`: an IP endpoint, or a DNS name and port (src/discovery/ resolves it). */
export type BackendTarget = { ok: true; endpoint: Endpoint } | { ok: true; name: string; port: number } | { ok: false; message: string };

/** RFC 1123 host names (and `_` for service-style labels), at most 253 characters; at least one label not all digits. */
const HOST_NAME = /^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** Parse a backend `address`: an IP literal as parseEndpoint does, or a host name (lower-cased, without a trailing dot) and port. */
export function parseBackendTarget(value: unknown): BackendTarget {
  if (typeof value === 'string' && !value.startsWith('[')) {
    const colon = value.lastIndexOf(':');
    const host = colon < 0 ? '' : value.slice(0, colon);
    const portText = colon < 0 ? '' : value.slice(colon + 1);
    if (host !== 'localhost' && !isIPv4(host) && !/^[\d.]+$/.test(host) && HOST_NAME.test(host)) {
      if (!/^\d+$/.test(portText)) return fail(`bad address ${JSON.stringify(value)}: port ${JSON.stringify(portText)} is not a number; expected 1 to 65535`);
      const port = Number(portText);
      if (port < 1 || port > 65535) return fail(`port ${portText} out of range in address ${JSON.stringify(value)}; expected 1 to 65535`);
      return { ok: true, name: host.toLowerCase().replace(/\.$/, ''), port };
    }
  }
  return parseEndpoint(value, 'backend');
}
