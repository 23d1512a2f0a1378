// http: GET the path with HTTP/1.1 and Connection: close, and read the
// status line; the status must be one of expect_status (default 200-399).
// With expect / expect_hex / expect_regex the response after the status line
// (headers and body as sent, up to 1 MiB) must also contain or match it.
import { CheckFailure } from '../../errors.js';
import { converse } from '../conversation.js';
import type { Probe } from '../probe.js';
import { describeExpectation, matches } from './expectation.js';

const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: ([^\r\n]*))?$/;
const MAX_STATUS_LINE = 8192;

export const httpProbe: Probe = ({ host, port, check }) =>
  converse(host, port, check.timeoutMs, async (c) => {
    const hostHeader = check.host ?? (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);
    c.write(`GET ${check.path} HTTP/1.1\r\nHost: ${hostHeader}\r\nUser-Agent: fulcrum-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n`);
    c.stage = 'waiting for the status line';
    const line = await c.read((buffer) => {
      const end = buffer.indexOf('\r\n');
      // The same bound whether the line came in one read or several (+ 1: its CR may be in, its LF not yet).
      if (end < 0 ? buffer.length > MAX_STATUS_LINE + 1 : end > MAX_STATUS_LINE) throw new CheckFailure('no HTTP status line in the first 8 KiB');
      if (end < 0) return undefined;
      return { value: buffer.subarray(0, end).toString('latin1'), used: end + 2 };
    });
    const match = STATUS_LINE.exec(line);
    if (!match) throw new CheckFailure(`not an HTTP response: ${JSON.stringify(line.slice(0, 64))}`);
    const status = Number(match[1]);
    const ok = check.expectStatus ? check.expectStatus.includes(status) : status >= 200 && status < 400;
    const detail = `HTTP ${status}${match[2] ? ` ${match[2]}` : ''}`;
    if (!ok) return { ok, detail: `${detail}, expected ${check.expectStatus?.join(' or ') ?? '200 to 399'}` };
    if (!check.expect) return { ok, detail };
    // The rest of the response (headers and body, as sent: Connection: close ends it) must hold the expectation.
    const expect = check.expect;
    c.stage = `reading the response for ${describeExpectation(expect)}`;
    try {
      await c.read((buffer) => (matches(expect, buffer) ? { value: true, used: 0 } : undefined));
    } catch (err) {
      if (!(err instanceof CheckFailure)) throw err;
      if (err.message.startsWith('connection closed')) throw new CheckFailure(`${detail}, but no ${describeExpectation(expect)} in the response (${c.received.length} bytes)`);
      throw new CheckFailure(`${detail}, but ${err.message}`);
      throw err;
    }
    return { ok, detail: `${detail}, body has ${describeExpectation(expect)}` };
  });
