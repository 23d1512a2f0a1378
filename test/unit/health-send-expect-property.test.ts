// Properties of the send_expect check's reply matching (src/health/checks/send-expect.ts,
// expectation.ts), with fast-check: matches() is exactly "the reply contains
// the bytes" / "the regex matches the reply as latin1"; preview() is one
// printable, bounded line for any bytes; and the probe, answered with any
// bytes over a real loopback connection, passes exactly when the reply holds
// the expectation, so a reply cut before the expectation's end never passes,
// and fails otherwise with a CheckFailure. Runs are bounded (~2 s).
import fc from 'fast-check';
import t from 'tap';
import { matches, preview } from '../../src/health/checks/expectation.js';
import { describe, endedCleanly, passed, startReplyServer } from './property-reply-server.js';

const RUNS = 300;
const bytesArb = fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b));
/** A reply and an expectation that is in it, out of it, or straddles its end. */
const caseArb = fc.tuple(bytesArb, fc.uint8Array({ minLength: 1, maxLength: 8 }).map((b) => Buffer.from(b)), fc.nat(), fc.boolean()).map(([reply, expect, at, plant]) => {
  if (!plant) return { reply, expect };
  const where = at % (reply.length + 1);
  return { reply: Buffer.concat([reply.subarray(0, where), expect, reply.subarray(where)]), expect };
});

t.test('matches: bytes are found exactly when the reply contains them; a regex tests the latin1 text', async (t) => {
  fc.assert(fc.property(caseArb, ({ reply, expect }) => matches({ bytes: expect, text: '' }, reply) === reply.includes(expect)), { numRuns: RUNS });
  const regexArb = fc.constantFrom('^\\+OK', 'PONG\\r\\n$', '[\\x00-\\x1f]', 'a.c', '\\xff');
  fc.assert(fc.property(bytesArb, regexArb, (reply, source) => matches({ regex: new RegExp(source) }, reply) === new RegExp(source).test(reply.toString('latin1'))), { numRuns: RUNS });
  t.pass(`${2 * RUNS} replies`);
});

t.test('preview: one printable line, bounded, for any bytes', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)), fc.integer({ min: 1, max: 100 }), (reply, max) => {
      const text = preview(reply, max);
      // JSON escapes at most double a character (\" and \\); the rest is the ellipsis and the byte count.
      return /^[\x20-\x7e…]*$/.test(text) && text.length <= 2 * max + 30 && text.endsWith(`(${reply.length} bytes)`);
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} previews`);
});

t.test('the probe passes exactly when the reply holds the expectation; otherwise a CheckFailure', async (t) => {
  const server = await startReplyServer(t);
  await fc.assert(
    fc.asyncProperty(caseArb, async ({ reply, expect }) => {
      const outcome = await server.probe({ type: 'send_expect', send: 'HELLO\r\n', expect_hex: expect.toString('hex') }, reply);
      if (passed(outcome) !== reply.includes(expect) || !endedCleanly(outcome)) {
        throw new Error(`reply ${reply.toString('hex')}, expect ${expect.toString('hex')}: ${describe(outcome)}`);
      }
    }),
    { numRuns: 150 },
  );
  t.pass('150 replies');
  // The only occurrence ends the reply: every cut before its end fails.
  const good = Buffer.from('220 smtp.example.org ESMTP ready\r\n');
  for (let length = 0; length < good.length; length++) {
    const outcome = await server.probe({ type: 'send_expect', expect: 'ESMTP ready\r\n' }, good.subarray(0, length));
    if (passed(outcome) || !endedCleanly(outcome)) t.fail(`cut at ${length}: ${describe(outcome)}`);
  }
  t.ok(passed(await server.probe({ type: 'send_expect', expect: 'ESMTP ready\r\n' }, good)), `the whole reply passes, each of its ${good.length} cuts fails`);
});
