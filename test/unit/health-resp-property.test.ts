// Properties of the redis check's RESP2 reply parser (src/health/checks/resp.ts)
// and of the redis probe that uses it (src/health/checks/redis.ts), with
// fast-check: any bytes give "incomplete", one reply, or a CheckFailure,
// never another error; every RESP value and every command encodeCommand
// writes parses back to itself, whatever follows it; every cut-short reply is
// "incomplete", never a wrong success; the probe, answered with any bytes
// over a real loopback connection, ends in a result or a CheckFailure, and a
// good answer cut at any length never passes. Runs are bounded (~2 s).
import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import t from 'tap';
import { CheckFailure } from '../../src/errors.js';
import { encodeCommand, parseReply, RespError, type RespValue } from '../../src/health/checks/resp.js';
import { describe, endedCleanly, passed, startReplyServer } from './property-reply-server.js';

const RUNS = 300;

/** A RESP value and its bytes (the test's own encoder: every type the parser reads). */
interface Encoded {
  value: RespValue;
  bytes: Buffer;
}

const line = fc.string({ unit: 'grapheme', maxLength: 20 }).filter((s) => !/[\r\n]/.test(s));
const { reply: replyArb } = fc.letrec<{ reply: Encoded; scalar: Encoded; array: Encoded }>((tie) => ({
  reply: fc.oneof({ depthSize: 'small', maxDepth: 8 }, tie('scalar'), tie('array')),
  scalar: fc.oneof(
    line.map((s) => ({ value: s, bytes: Buffer.from(`+${s}\r\n`) })),
    line.map((s) => ({ value: new RespError(s), bytes: Buffer.from(`-${s}\r\n`) })),
    fc.maxSafeInteger().map((n) => ({ value: n, bytes: Buffer.from(`:${n}\r\n`) })),
    fc.string({ unit: 'grapheme', maxLength: 30 }).map((s) => ({ value: s, bytes: Buffer.concat([Buffer.from(`$${Buffer.byteLength(s)}\r\n`), Buffer.from(s), Buffer.from('\r\n')]) })),
    fc.constantFrom({ value: null, bytes: Buffer.from('$-1\r\n') }, { value: null, bytes: Buffer.from('*-1\r\n') }),
  ),
  array: fc.array(tie('reply'), { maxLength: 4 }).map((items) => ({
    value: items.map((i) => i.value),
    bytes: Buffer.concat([Buffer.from(`*${items.length}\r\n`), ...items.map((i) => i.bytes)]),
  })),
}));

/** parseReply's contract on any buffer: undefined, a reply of 1..length bytes, or a CheckFailure. */
function parseChecked(buffer: Buffer): { value: RespValue; used: number } | undefined | 'failure' {
  try {
    const parsed = parseReply(buffer);
    if (parsed !== undefined && !(parsed.used > 0 && parsed.used <= buffer.length)) throw new Error(`used ${parsed.used} of ${buffer.length}`);
    return parsed;
  } catch (err) {
    if (err instanceof CheckFailure) return 'failure';
    throw err;
  }
}

t.test('any bytes: incomplete, one reply, or a CheckFailure; never another error', async (t) => {
  const respish = fc.array(fc.oneof(fc.constantFrom('+', '-', ':', '$', '*', '\r\n', '-1', '0', '3', '1024', '99999999999', 'x'), fc.string({ maxLength: 4 })), { maxLength: 20 }).map((parts) => Buffer.from(parts.join('')));
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)), respish), (buffer) => {
      parseChecked(buffer);
    }),
    { numRuns: RUNS * 2 },
  );
  t.pass(`${RUNS * 2} buffers`);
});

t.test('every RESP value parses back to itself, whatever follows it', async (t) => {
  fc.assert(
    fc.property(replyArb, fc.uint8Array({ maxLength: 8 }), ({ value, bytes }, after) => {
      const parsed = parseChecked(Buffer.concat([bytes, after]));
      return parsed !== undefined && parsed !== 'failure' && parsed.used === bytes.length && isDeepStrictEqual(parsed.value, value);
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} values`);
});

t.test('a bulk string is taken only when CRLF follows its declared length', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 12 }), fc.uint8Array({ maxLength: 16 }).map((b) => Buffer.from(b)), (declared, data) => {
      const parsed = parseChecked(Buffer.concat([Buffer.from(`$${declared}\r\n`), data]));
      if (parsed === undefined || parsed === 'failure') return true;
      return data[declared] === 0x0d && data[declared + 1] === 0x0a && parsed.used === 4 + String(declared).length - 1 + declared + 2;
    }),
    { numRuns: RUNS, examples: [[2, Buffer.from('abc\r\n')]] }, // once read as "ab", its "c\r" taken for the CRLF
  );
  t.pass(`${RUNS} bulk strings`);
});

t.test('encodeCommand → parseReply round-trips any arguments', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.string({ unit: 'grapheme', maxLength: 30 }), { maxLength: 6 }), (args) => {
      const bytes = encodeCommand(...args);
      const parsed = parseChecked(bytes);
      return parsed !== undefined && parsed !== 'failure' && parsed.used === bytes.length && isDeepStrictEqual(parsed.value, args);
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} commands`);
});

t.test('a reply cut at any length is incomplete, never a wrong success', async (t) => {
  fc.assert(
    fc.property(replyArb, ({ bytes }) => {
      for (let length = 0; length < bytes.length; length++) {
        if (parseChecked(bytes.subarray(0, length)) !== undefined) return false;
      }
      return true;
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} values, every length`);
});

t.test('the redis probe: any answer ends in a result or a CheckFailure; a good answer cut short never passes', async (t) => {
  const server = await startReplyServer(t);
  const check = { type: 'redis' };
  const answerArb = fc.oneof(
    fc.uint8Array({ maxLength: 48 }),
    fc.array(replyArb, { maxLength: 3 }).map((replies) => Buffer.concat(replies.map((r) => r.bytes))),
    // PONG, then a ROLE-like array of any shape.
    fc.array(replyArb, { maxLength: 5 }).map((items) => Buffer.concat([Buffer.from(`+PONG\r\n*${items.length}\r\n`), ...items.map((i) => i.bytes)])),
  );
  await fc.assert(
    fc.asyncProperty(answerArb, async (answer) => {
      const outcome = await server.probe(check, answer);
      if (!endedCleanly(outcome)) throw new Error(describe(outcome));
    }),
    { numRuns: 150 },
  );
  const good = Buffer.from('+PONG\r\n*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n');
  t.ok(passed(await server.probe(check, good)), 'the whole answer passes');
  for (let length = 0; length < good.length; length++) {
    const outcome = await server.probe(check, good.subarray(0, length));
    if (passed(outcome) || !endedCleanly(outcome)) t.fail(`cut at ${length}: ${describe(outcome)}`);
  }
  t.pass(`150 answers, and the good one cut at each of its ${good.length} lengths`);
});
