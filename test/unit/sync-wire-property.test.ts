// Properties of session sync's wire format and replay window
// (src/sync/wire.ts, src/sync/replay-window.ts), checked with fast-check on
// generated messages: decodeMessage never throws and always names a known
// reason; encode → decode round-trips any records and header; a message cut
// at any length, with any one bit flipped, or under another key is rejected;
// records signed with the right key but not well formed are rejected whole;
// the replay window takes each (incarnation, sequence) at most once, always
// takes the next sequence, and never goes back to an older incarnation.
import fc from 'fast-check';
import { createHmac } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import t from 'tap';
import type { SessionRecord } from '../../src/engine/sync-records.js';
import { ReplayWindow } from '../../src/sync/replay-window.js';
import {
  decodeMessage,
  encodeMessage,
  FLAG_BULK,
  FLAG_BULK_END,
  FLAG_RESYNC_REQUEST,
  HEADER_BYTES,
  MAC_BYTES,
  MAX_DATAGRAM_BYTES,
  MAX_RECORDS,
  REJECT_REASONS,
  RECORD_BYTES,
  serviceId,
  validFlags,
} from '../../src/sync/wire.js';

const RUNS = 200;
const keyArb = fc.uint8Array({ minLength: 16, maxLength: 64 }).map((k) => Buffer.from(k));

/** The config's canonical text of an address (WHATWG URL serialisation, as Endpoint.text). */
function canonical(host: string, v6: boolean): string {
  return v6 ? new URL(`http://[${host}]/`).hostname.slice(1, -1) : host;
}

const recordArb: fc.Arbitrary<SessionRecord> = fc.record({
  kind: fc.constantFrom('sticky' as const, 'udp' as const),
  service: fc.string({ minLength: 1, maxLength: 40 }),
  backend: fc.oneof(
    fc.tuple(fc.ipV4(), fc.integer({ min: 1, max: 65535 })).map(([h, p]) => `${h}:${p}`),
    fc.tuple(fc.ipV6(), fc.integer({ min: 1, max: 65535 })).map(([h, p]) => `[${canonical(h, true)}]:${p}`),
  ),
  ageMs: fc.integer({ min: 0, max: 0xffffffff }),
  key: fc.bigInt({ min: 1n, max: (1n << 64n) - 1n }),
});

const headerArb = fc.record({
  incarnation: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  sequence: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  sentAt: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
});

/** A message as a sender may write it: flags that go with its record count. */
const messageArb = fc
  .record({
    key: keyArb,
    header: headerArb,
    records: fc.array(recordArb, { maxLength: MAX_RECORDS }),
    flags: fc.constantFrom(0, FLAG_BULK, FLAG_RESYNC_REQUEST, FLAG_BULK | FLAG_BULK_END),
  })
  .filter(({ records, flags }) => validFlags(flags, records.length))
  .map((m) => ({ ...m, bytes: encodeMessage(m.key, m.header, m.records, m.flags) }));

function knownRejection(result: ReturnType<typeof decodeMessage>): boolean {
  return !result.ok && REJECT_REASONS.includes(result.reason);
}

t.test('any bytes: decodeMessage rejects with a known reason and never throws', async (t) => {
  const bytesArb = fc.oneof(
    fc.uint8Array({ maxLength: MAX_DATAGRAM_BYTES + 8 }),
    // A plausible header (magic, version, a count that fits the length) so the MAC check is reached.
    fc.tuple(fc.integer({ min: 0, max: MAX_RECORDS }), fc.uint8Array({ minLength: MAX_DATAGRAM_BYTES, maxLength: MAX_DATAGRAM_BYTES })).map(([n, random]) => {
      const b = Buffer.from(random).subarray(0, HEADER_BYTES + n * RECORD_BYTES + MAC_BYTES);
      b.write('FLSY', 0, 'latin1');
      b[4] = 1;
      b.writeUInt16BE(n, 6);
      return b;
    }),
  );
  fc.assert(fc.property(keyArb, bytesArb, (key, bytes) => knownRejection(decodeMessage(key, Buffer.from(bytes)))), { numRuns: RUNS * 2 });
  t.pass(`${RUNS * 2} datagrams`);
});

t.test('encode → decode round-trips the header, flags and records', async (t) => {
  fc.assert(
    fc.property(messageArb, ({ key, header, records, flags, bytes }) => {
      const decoded = decodeMessage(key, bytes);
      if (!decoded.ok || bytes.length > MAX_DATAGRAM_BYTES) return false;
      const expected = records.map((r) => ({ kind: r.kind, serviceId: serviceId(r.service), backend: r.backend, ageMs: r.ageMs, key: r.key }));
      // ({ ...header }: fast-check's records have no prototype; the decoder's are plain objects.)
      return isDeepStrictEqual(decoded, { ok: true, header: { ...header }, flags, records: expected });
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} messages`);
});

t.test('cut at any length, one bit flipped anywhere, or another key: rejected', async (t) => {
  fc.assert(
    fc.property(messageArb, fc.nat(), keyArb, ({ key, bytes }, pick, other) => {
      for (let length = 0; length < bytes.length; length++) {
        if (!knownRejection(decodeMessage(key, bytes.subarray(0, length)))) return false;
      }
      const bit = pick % (bytes.length * 8);
      const flipped = Buffer.from(bytes);
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      if (!knownRejection(decodeMessage(key, flipped))) return false;
      return other.equals(key) || knownRejection(decodeMessage(other, bytes));
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} messages, every length, a bit flip each, another key`);
});

t.test('records signed with the key but not well formed are rejected whole; well-formed ones decode', async (t) => {
  const KEY = Buffer.from('a property-test key of 32 bytes!');
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 4 }), fc.uint8Array({ minLength: 4 * RECORD_BYTES, maxLength: 4 * RECORD_BYTES }), fc.boolean(), (n, random, tidy) => {
      const body = Buffer.alloc(HEADER_BYTES + n * RECORD_BYTES);
      body.write('FLSY', 0, 'latin1');
      body[4] = 1;
      body.writeUInt16BE(n, 6);
      Buffer.from(random).copy(body, HEADER_BYTES, 0, n * RECORD_BYTES);
      if (tidy) {
        // Nudge the random records toward the valid ones so both sides are seen.
        for (let i = 0; i < n; i++) {
          const at = HEADER_BYTES + i * RECORD_BYTES;
          body[at] = 1 + (body[at]! & 1);
          body[at + 1] = body[at + 1]! & 1 ? 4 : 6;
          if (body[at + 1] === 4) body.fill(0, at + 28, at + 40);
          body.fill(0, at + 40, at + 48);
        }
      }
      const datagram = Buffer.concat([body, createHmac('sha256', KEY).update(body).digest()]);
      const result = decodeMessage(KEY, datagram);
      if (!result.ok) return result.reason === 'badRecord';
      return (
        result.records.length === n &&
        result.records.every((r) => {
          const port = Number(/:(\d+)$/.exec(r.backend)?.[1]);
          return (r.kind === 'sticky' || r.kind === 'udp') && r.key !== 0n && port >= 1 && port <= 65535 && /^(\d+\.\d+\.\d+\.\d+|\[[0-9a-f:.]+\]):\d+$/.test(r.backend);
        })
      );
    }),
    { numRuns: RUNS * 2 },
  );
  t.pass(`${RUNS * 2} signed messages`);
});

t.test('replay window: each (incarnation, sequence) at most once; the next one always; never an older incarnation', async (t) => {
  const arrivalArb = fc.array(fc.record({ sender: fc.constantFrom('a', 'b'), incarnation: fc.bigInt({ min: 1n, max: 3n }), sequence: fc.bigInt({ min: 0n, max: 150n }) }), { maxLength: 200 });
  fc.assert(
    fc.property(arrivalArb, (arrivals) => {
      const window = new ReplayWindow();
      const taken = new Set<string>();
      const newest = new Map<string, { incarnation: bigint; highest: bigint }>();
      for (const { sender, incarnation, sequence } of arrivals) {
        const before = newest.get(sender);
        const accepted = window.accept(sender, incarnation, sequence);
        const id = `${sender}/${incarnation}/${sequence}`;
        if (accepted && taken.has(id)) return false; // a replay got through
        if (accepted && before && incarnation < before.incarnation) return false; // went back in time
        const next = !before || incarnation > before.incarnation || (incarnation === before.incarnation && sequence > before.highest);
        if (next && !accepted) return false; // a new message was refused
        if (accepted) {
          taken.add(id);
          if (!before || incarnation > before.incarnation) {
            newest.set(sender, { incarnation, highest: sequence });
          } else if (sequence > before.highest) {
            before.highest = sequence;
          }
        }
      }
      return true;
    }),
    { numRuns: RUNS * 2 },
  );
  t.pass(`${RUNS * 2} arrival orders`);
});
