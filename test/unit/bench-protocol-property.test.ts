// Properties of the bench client's reading of the control channel
// (src/bench/protocol.ts), which parses whatever the server it is pointed at
// sends, with fast-check: takeFrame on any bytes returns "need more", one
// frame and the rest, or throws an Error naming what is wrong (its documented
// contract; control-channel.ts turns it into a BenchError); an encoded frame
// comes back whole whatever follows it and is "need more" at every shorter
// length; SESSION, ERROR and RESULTS payloads decode or throw an Error, and
// RESULTS as native/bench/server.cc lays it out decodes to its counts.
// (The server side is fuzzed natively: test/fuzz/bench_server_fuzz.cc.)
import fc from 'fast-check';
import t from 'tap';
import { decodeError, decodeResults, decodeSession, encodeFrame, encodeHello, FRAME_HEADER_SIZE, MAX_FRAME_PAYLOAD, takeFrame } from '../../src/bench/protocol.js';

const RUNS = 300;

/** Calls f; true when it returned, or threw an Error with a message (never anything else). */
function returnsOrThrowsError(f: () => unknown): boolean {
  try {
    f();
    return true;
  } catch (err) {
    return err instanceof Error && !(err instanceof RangeError) && err.message.length > 0;
  }
}

t.test('takeFrame on any bytes: need more, one frame and the rest, or an Error', async (t) => {
  const framish = fc.tuple(fc.constantFrom('FB', 'FU', 'XX'), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 255 }), fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constant(MAX_FRAME_PAYLOAD + 1), fc.constant(0xffffffff)), fc.uint8Array({ maxLength: 48 })).map(
    ([magic, version, type, length, rest]) => {
      const head = Buffer.alloc(8);
      head.write(magic, 0, 'latin1');
      head[2] = version;
      head[3] = type;
      head.writeUInt32BE(length, 4);
      return Buffer.concat([head, rest]);
    },
  );
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)), framish), (buffer) =>
      returnsOrThrowsError(() => {
        const taken = takeFrame(buffer);
        if (taken !== undefined && FRAME_HEADER_SIZE + taken.frame.payload.length + taken.rest.length !== buffer.length) throw new RangeError('bytes lost or invented');
      }),
    ),
    { numRuns: RUNS * 2 },
  );
  t.pass(`${RUNS * 2} buffers`);
});

t.test('an encoded frame comes back whole, whatever follows; every shorter length needs more', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 16 }), (type, payload, after) => {
      const frame = encodeFrame(type, Buffer.from(payload));
      const taken = takeFrame(Buffer.concat([frame, after]));
      if (taken === undefined || taken.frame.type !== type || !taken.frame.payload.equals(payload) || !taken.rest.equals(after)) return false;
      for (let length = 0; length < frame.length; length++) if (takeFrame(frame.subarray(0, length)) !== undefined) return false;
      return true;
    }),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 5 }), fc.nat(0xffffffff), fc.nat(0xffffffff), (role, session, argument) => {
      const payload = takeFrame(encodeHello(role, session, argument))!.frame.payload;
      return payload[0] === role && payload.readUInt32BE(4) === session && payload.readUInt32BE(8) === argument;
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} frames, every length; ${RUNS} HELLOs`);
});

t.test('SESSION, ERROR and RESULTS payloads of any bytes decode or throw an Error', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }).map((b) => Buffer.from(b)), (payload) =>
      [() => decodeSession(payload), () => decodeError(payload), () => decodeResults(payload)].every(returnsOrThrowsError),
    ),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} payloads`);
});

t.test('RESULTS as the server lays it out decodes to its counts', async (t) => {
  const u64 = fc.bigInt({ min: 0n, max: BigInt(Number.MAX_SAFE_INTEGER) });
  const streamArb = fc.record({ received: u64, sent: u64, state: fc.integer({ min: 0, max: 2 }) });
  const flowArb = fc.record({ datagrams: u64, bytes: u64, reordered: u64, highestSequence: u64 });
  fc.assert(
    fc.property(fc.array(streamArb, { maxLength: 6 }), fc.array(flowArb, { maxLength: 6 }), (streams, flows) => {
      // server.cc reply_results: counts, 24 bytes a stream (received, sent, state, 7 reserved), 32 a flow.
      const payload = Buffer.alloc(8 + streams.length * 24 + flows.length * 32);
      payload.writeUInt32BE(streams.length, 0);
      payload.writeUInt32BE(flows.length, 4);
      streams.forEach((s, i) => {
        payload.writeBigUInt64BE(s.received, 8 + i * 24);
        payload.writeBigUInt64BE(s.sent, 16 + i * 24);
        payload[24 + i * 24] = s.state;
      });
      flows.forEach((f, i) => [f.datagrams, f.bytes, f.reordered, f.highestSequence].forEach((v, k) => payload.writeBigUInt64BE(v, 8 + streams.length * 24 + i * 32 + k * 8)));
      const decoded = decodeResults(payload);
      const number = (o: Record<string, bigint | number>): Record<string, number> => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Number(v)]));
      if (JSON.stringify(decoded) !== JSON.stringify({ streams: streams.map(number), flows: flows.map(number) })) return false;
      // One byte more or less than the counts say: refused.
      return [payload.subarray(0, payload.length - 1), Buffer.concat([payload, Buffer.alloc(1)])].every((p) => {
        try {
          decodeResults(p);
          return false;
        } catch (err) {
          return err instanceof Error;
        }
      });
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} RESULTS payloads`);
});
