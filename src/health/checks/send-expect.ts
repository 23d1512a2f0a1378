// send_expect: send bytes, then read until the reply contains the expected
// string / bytes or matches the regex. Without `expect`, sending is enough.
import { CheckFailure } from '../../errors.js';
import { converse } from '../conversation.js';
import type { Probe } from '../probe.js';
import { describeExpectation, matches, preview } from './expectation.js';

export const sendExpectProbe: Probe = ({ host, port, check }) =>
  converse(host, port, check.timeoutMs, async (c) => {
    if (check.send) c.write(check.send);
    const expect = check.expect;
    if (!expect) return { ok: true, detail: `sent ${check.send?.length ?? 0} bytes` };
    c.stage = `waiting for ${describeExpectation(expect)}`;
    try {
      await c.read((buffer) => (matches(expect, buffer) ? { value: true, used: 0 } : undefined));
    } catch (err) {
      if (err instanceof CheckFailure) throw new CheckFailure(`${err.message}; got ${preview(c.received)}`);
      throw err;
    }
    return { ok: true, detail: `got ${describeExpectation(expect)}` };
  });
