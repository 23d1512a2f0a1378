// udp: send one datagram from a connected socket and wait for a reply (that
// matches `expect`, when set). A closed port answers with ICMP port
// unreachable, which a connected UDP socket reports as ECONNREFUSED: the check
// fails at once instead of waiting for the timeout.
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Probe } from '../probe.js';
import { describeExpectation, matches, preview } from './expectation.js';

export const udpProbe: Probe = ({ host, port, check }) =>
  new Promise((resolve) => {
    const socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    let settled = false;
    let lastReply: Buffer | undefined;
    const finish = (ok: boolean, detail: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        socket.close();
      } catch {
        // Already closed (an error closed it): nothing left to release.
      }
      resolve({ ok, detail });
    };
    const timer = setTimeout(() => {
      const seen = lastReply ? `; got ${preview(lastReply)}` : '';
      finish(false, `timeout after ${check.timeoutMs} ms waiting for a reply${seen}`);
    }, check.timeoutMs);
    socket.on('error', (err: NodeJS.ErrnoException) => finish(false, `${err.code ?? err.message}${err.code === 'ECONNREFUSED' ? ' (ICMP port unreachable)' : ''}`));
    socket.on('message', (msg: Buffer) => {
      lastReply = msg;
      if (!check.expect) finish(true, `reply of ${msg.length} bytes`);
      else if (matches(check.expect, msg)) finish(true, `got ${describeExpectation(check.expect)}`);
    });
    socket.connect(port, host, () => {
      socket.send(check.send ?? Buffer.alloc(0), (err) => {
        if (err) finish(false, `send: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
      });
    });
  });
