// redis: AUTH when a password is configured, then PING (must answer PONG:
// a loading or MASTERDOWN node answers an error) and ROLE: `master` is a
// primary; `slave` a replica, counted as one only while its link to the
// master is up (a replica that lost its master serves stale data).
import { CheckFailure } from '../../errors.js';
import { converse } from '../conversation.js';
import type { Probe, ProbeResult } from '../probe.js';
import { encodeCommand, parseReply, RespError } from './resp.js';

export const redisProbe: Probe = ({ host, port, check, password }) =>
  converse(host, port, check.timeoutMs, async (c): Promise<ProbeResult> => {
    const auth = password === undefined ? [] : check.user ? ['AUTH', check.user, password] : ['AUTH', password];
    if (auth.length > 0) c.write(encodeCommand(...auth));
    c.write(Buffer.concat([encodeCommand('PING'), encodeCommand('ROLE'), encodeCommand('QUIT')]));
    if (auth.length > 0) {
      c.stage = 'waiting for the AUTH reply';
      const answer = await c.read(parseReply);
      if (answer instanceof RespError) throw new CheckFailure(`AUTH refused: ${errorText(answer)}`);
    }
    c.stage = 'waiting for PONG';
    const pong = await c.read(parseReply);
    if (pong instanceof RespError) throw new CheckFailure(`PING: ${errorText(pong)}`);
    if (pong !== 'PONG') throw new CheckFailure(`PING answered ${JSON.stringify(pong)}`);
    c.stage = 'waiting for the ROLE reply';
    const role = await c.read(parseReply);
    if (role instanceof RespError) throw new CheckFailure(`ROLE: ${errorText(role)}`);
    if (!Array.isArray(role) || typeof role[0] !== 'string') throw new CheckFailure('ROLE answered something else than an array');
    if (role[0] === 'master') return { ok: true, detail: `PONG, role master (${Array.isArray(role[2]) ? role[2].length : 0} replicas)`, role: 'primary' };
    if (role[0] === 'slave') {
      const link = String(role[3]);
      const master = `${String(role[1])}:${String(role[2])}`;
      if (link !== 'connected') return { ok: check.role === 'any', detail: `PONG, role replica of ${master}, link ${link}` };
      return { ok: true, detail: `PONG, role replica of ${master}`, role: 'replica' };
    }
    return { ok: check.role === 'any', detail: `PONG, role ${role[0]}` };
  });

/** Error replies are short; keep the detail to one bounded line. */
function errorText(error: RespError): string {
  return error.message.slice(0, 120);
}
