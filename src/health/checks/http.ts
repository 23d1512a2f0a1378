// http: GET the path with HTTP/1.1 and Connection: close, and read the
// status line; the status must be one of expect_status (default 200-399).
import { CheckFailure, converse } from '../conversation.js';
import type { Probe } from '../probe.js';

const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: ([^\r\n]*))?$/;
const MAX_STATUS_LINE = 8192;

export const httpProbe: Probe = ({ host, port, check }) =>
  converse(host, port, check.timeoutMs, async (c) => {
    const hostHeader = check.host ?? (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);
    c.write(`GET ${check.path} HTTP/1.1\r\nHost: ${hostHeader}\r\nUser-Agent: fulcrum-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n`);
    c.stage = 'waiting for the status line';
    const line = await c.read((buffer) => {
      const end = buffer.indexOf('\r\n');
      if (end < 0) {
        if (buffer.length > MAX_STATUS_LINE) throw new CheckFailure('no HTTP status line in the first 8 KiB');
        return undefined;
      }
      return { value: buffer.subarray(0, end).toString('latin1'), used: end + 2 };
    });
    const match = STATUS_LINE.exec(line);
    if (!match) throw new CheckFailure(`not an HTTP response: ${JSON.stringify(line.slice(0, 64))}`);
    const status = Number(match[1]);
    const ok = check.expectStatus ? check.expectStatus.includes(status) : status >= 200 && status < 400;
    const detail = `HTTP ${status}${match[2] ? ` ${match[2]}` : ''}`;
    return { ok, detail: ok ? detail : `${detail}, expected ${check.expectStatus?.join(' or ') ?? '200 to 399'}` };
  });
