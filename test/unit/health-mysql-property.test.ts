// Properties of the mysql check's reply parsing (src/health/checks/mysql.ts),
// with fast-check, over real loopback connections to a server that answers
// with generated packets: any answer, to the anonymous greeting read and to a
// login with `SELECT @@read_only`, ends in a result or a CheckFailure (a
// reason the check can report), never another error; and a good answer cut
// at any length never passes. Runs are bounded (~2 s).
import fc from 'fast-check';
import t from 'tap';
import { describe, endedCleanly, everyAnswerEndsCleanly, passed, startReplyServer } from './property-reply-server.js';

/** A protocol packet: 3-byte little-endian length, sequence, payload. */
function packet(sequence: number, payload: Uint8Array): Buffer {
  const head = Buffer.alloc(4);
  head.writeUIntLE(payload.length, 0, 3);
  head[3] = sequence & 0xff;
  return Buffer.concat([head, payload]);
}

/** An Initial Handshake v10 (mysql_native_password unless told otherwise). */
function greeting({ version = '10.11.6-MariaDB', capsHigh = 0x0008, plugin = 'mysql_native_password' } = {}): Buffer {
  const fixed = Buffer.alloc(4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10);
  fixed.writeUInt32LE(7, 0); // connection id
  Buffer.from('abcdefgh').copy(fixed, 4);
  fixed.writeUInt16LE(0xf7ff, 13); // capabilities, low (CLIENT_SECURE_CONNECTION among them)
  fixed[15] = 45;
  fixed.writeUInt16LE(2, 16);
  fixed.writeUInt16LE(capsHigh, 18); // high: CLIENT_PLUGIN_AUTH
  fixed[20] = 21;
  return Buffer.concat([Buffer.from([10]), Buffer.from(`${version}\0`), fixed, Buffer.from('ijklmnopqrst\0'), Buffer.from(`${plugin}\0`)]);
}

const OK = Buffer.from([0x00, 0, 0, 2, 0, 0, 0]);
const EOF_PACKET = Buffer.from([0xfe, 0, 0, 2, 0]);
/** A length-encoded string. */
function lenenc(text: string): Buffer {
  return Buffer.concat([Buffer.from([text.length]), Buffer.from(text, 'latin1')]);
}

const payloadArb = fc.oneof(
  fc.uint8Array({ maxLength: 16 }),
  // A first byte that means something (OK, ERR, EOF/auth switch, NULL, lenenc prefixes, v10) and a short tail.
  fc.tuple(fc.constantFrom(0x00, 0xff, 0xfe, 0xfb, 0xfc, 0xfd, 10, 1), fc.uint8Array({ maxLength: 10 })).map(([first, tail]) => Buffer.concat([Buffer.from([first]), tail])),
  fc.record({ version: fc.string({ maxLength: 12 }), capsHigh: fc.integer({ min: 0, max: 0xffff }), plugin: fc.constantFrom('mysql_native_password', 'caching_sha2_password', '') }).map((g) => greeting(g)),
  fc.constantFrom(OK, EOF_PACKET, lenenc('0'), lenenc('1'), Buffer.from([0xfe, ...Buffer.from('mysql_native_password\0'), ...Buffer.alloc(20, 1)])),
);
/** Packets with any payloads, or raw bytes that may not even frame. */
const answerArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.array(payloadArb, { maxLength: 8 }).map((payloads) => Buffer.concat(payloads.map((p, i) => packet(i, p)))),
  fc.array(payloadArb, { maxLength: 7 }).map((payloads) => Buffer.concat([packet(0, greeting()), ...payloads.map((p, i) => packet(i + 2, p))])),
  fc.uint8Array({ maxLength: 24 }),
);

const ANONYMOUS = { type: 'mysql' };
const LOGIN = { type: 'mysql', user: 'health' };
/** Login accepted and the result set's head, up to the rows. */
const UP_TO_ROWS = Buffer.concat([
  packet(0, greeting()),
  packet(2, OK),
  packet(1, Buffer.from([1])), // one column
  packet(2, Buffer.concat(['def', '', '', '', '@@read_only', ''].map(lenenc))), // its definition
  packet(3, EOF_PACKET),
]);
const GOOD_LOGIN = Buffer.concat([UP_TO_ROWS, packet(4, lenenc('0')), packet(5, EOF_PACKET)]);

/** Answers that once ended in a RangeError (found by these properties), replayed on every run. */
const FOUND: Buffer[] = [
  packet(0, Buffer.from([0xff])), // an error packet without its code, instead of the greeting
  Buffer.concat([packet(0, greeting()), packet(2, Buffer.from([0xff, 0x15]))]), // the same as the login answer
  Buffer.concat([packet(0, greeting()), packet(2, OK), packet(1, Buffer.from([0xfc, 1]))]), // a column count cut inside its length
  Buffer.concat([packet(0, greeting()), packet(2, OK), packet(1, Buffer.alloc(0))]), // no column count at all
];

t.test('any answer to the greeting read or to a login: a result or a CheckFailure', (t) => everyAnswerEndsCleanly(t, [['anonymous', ANONYMOUS], ['login', LOGIN]], answerArb, FOUND));

t.test('a good answer cut at any length never passes', async (t) => {
  const server = await startReplyServer(t);
  const goods: Array<[string, Record<string, unknown>, Buffer]> = [
    ['anonymous: a greeting', ANONYMOUS, packet(0, greeting())],
    ['login and @@read_only = 0', LOGIN, GOOD_LOGIN],
  ];
  for (const [name, check, good] of goods) {
    t.ok(passed(await server.probe(check, good, 'pw')), `${name}: the whole answer passes`);
    let wrong = 0;
    for (let length = 0; length < good.length; length++) {
      const outcome = await server.probe(check, good.subarray(0, length), 'pw');
      if (passed(outcome) || !endedCleanly(outcome)) {
        wrong++;
        t.fail(`${name}, cut at ${length}: ${describe(outcome)}`);
      }
    }
    t.equal(wrong, 0, `${name}: cut at each of its ${good.length} lengths, never passes`);
  }
});

t.test('a row whose value runs past its packet is refused, not read as 0', async (t) => {
  const server = await startReplyServer(t);
  // The value says 5 bytes and holds only "0": the packet ends inside it.
  const lying = Buffer.concat([UP_TO_ROWS, packet(4, Buffer.from([5, 0x30])), packet(5, EOF_PACKET)]);
  const outcome = await server.probe(LOGIN, lying, 'pw');
  t.notOk(passed(outcome), describe(outcome));
  t.ok(endedCleanly(outcome), 'a CheckFailure');
});
