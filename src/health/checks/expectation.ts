// Matching a reply against `expect` / `expect_hex` / `expect_regex`, and
// describing what arrived when it did not match.
import type { Expectation } from '../../config/health-types.js';

export function matches(expect: Expectation, reply: Buffer): boolean {
  if ('regex' in expect) return expect.regex.test(reply.toString('latin1'));
  return reply.includes(expect.bytes);
}

export function describeExpectation(expect: Expectation): string {
  return 'regex' in expect ? `/${expect.regex.source}/` : JSON.stringify(expect.text);
}

/** The first bytes of a reply, printable (for details: short, one line). */
export function preview(reply: Buffer, max = 64): string {
  const text = reply.subarray(0, max).toString('latin1').replace(/[^\x20-\x7e]/g, '.');
  return `${JSON.stringify(text)}${reply.length > max ? '…' : ''} (${reply.length} bytes)`;
}
