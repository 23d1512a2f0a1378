// Properties of the VRRP receive path (src/ha/packet.ts), checked on
// generated datagrams with fast-check: parseDatagram never throws on any
// bytes and names a known reason; an encoded advert in a valid IPv4 datagram
// comes back as it was; a datagram cut short is never accepted; any one bit
// flipped in what the checksum covers (the VRRP message and the pseudo-
// header's addresses) is never accepted. Runs are bounded (a second or so).
import fc from 'fast-check';
import t from 'tap';
import { encodeAdvertisement, parseDatagram, type Advertisement, type DropReason } from '../../src/ha/packet.js';

const REASONS: readonly DropReason[] = ['truncated', 'badTtl', 'badVersion', 'badType', 'badChecksum', 'notVrrp', 'vridMismatch', 'addressMismatch', 'notPeer'];
const RUNS = 300;

const advertArb: fc.Arbitrary<Advertisement> = fc.record({
  vrid: fc.integer({ min: 1, max: 255 }),
  priority: fc.integer({ min: 0, max: 255 }),
  intervalCs: fc.integer({ min: 1, max: 0xfff }),
  addresses: fc.uniqueArray(fc.ipV4(), { minLength: 1, maxLength: 20 }),
});

/** A raw-socket datagram: a 20-byte IPv4 header (TTL 255, protocol 112) and the VRRP message. */
function datagram(message: Buffer, source: string, destination: string): Buffer {
  const header = Buffer.alloc(20);
  header[0] = 0x45;
  header.writeUInt16BE(20 + message.length, 2);
  header[8] = 255;
  header[9] = 112;
  Buffer.from(source.split('.').map(Number)).copy(header, 12);
  Buffer.from(destination.split('.').map(Number)).copy(header, 16);
  return Buffer.concat([header, message]);
}

const validArb = fc.record({ advert: advertArb, source: fc.ipV4(), destination: fc.ipV4() }).map(({ advert, source, destination }) => ({
  advert,
  source,
  destination,
  bytes: datagram(encodeAdvertisement(advert, source, destination), source, destination),
  rules: { vrid: advert.vrid, addresses: [...advert.addresses].reverse() },
}));

t.test('any bytes: parseDatagram returns a result with a known reason, never throws', async (t) => {
  const rulesArb = fc.record({ vrid: fc.integer({ min: 0, max: 255 }), addresses: fc.array(fc.ipV4(), { maxLength: 3 }) });
  // Random bytes, and bytes that start like an IPv4 VRRP datagram so the later checks are reached.
  const bytesArb = fc.oneof(
    fc.uint8Array({ maxLength: 120 }),
    fc.tuple(fc.uint8Array({ minLength: 20, maxLength: 120 }), fc.integer({ min: 5, max: 15 })).map(([b, ihl]) => {
      const out = Buffer.from(b);
      out[0] = 0x40 | ihl;
      out[8] = 255;
      out[9] = 112;
      return new Uint8Array(out);
    }),
  );
  fc.assert(
    fc.property(bytesArb, rulesArb, (bytes, rules) => {
      const result = parseDatagram(bytes, rules);
      if (result.ok) return result.advert.addresses.every((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a));
      return REASONS.includes(result.reason) && typeof result.detail === 'string';
    }),
    { numRuns: 2 * RUNS },
  );
  t.pass(`${2 * RUNS} datagrams`);
});

t.test('encode → parse round-trips every advert', async (t) => {
  fc.assert(
    fc.property(validArb, ({ advert, source, destination, bytes, rules }) => {
      const result = parseDatagram(bytes, rules);
      return result.ok && JSON.stringify(result.advert) === JSON.stringify({ ...advert, source, destination });
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} adverts`);
});

t.test('a datagram cut at any length is never accepted', async (t) => {
  fc.assert(
    fc.property(validArb, ({ bytes, rules }) => {
      for (let length = 0; length < bytes.length; length++) {
        const result = parseDatagram(bytes.subarray(0, length), rules);
        if (result.ok || result.reason !== 'truncated') return false;
      }
      return true;
    }),
    { numRuns: RUNS / 3 },
  );
  t.pass(`${RUNS / 3} adverts, every length`);
});

t.test('one bit flipped in the addresses or the VRRP message is never accepted', async (t) => {
  fc.assert(
    fc.property(validArb, fc.nat(), ({ bytes, rules }, pick) => {
      // Bytes 12..19: source and destination (in the checksum's pseudo-header); 20..: the message.
      const covered = bytes.length - 12;
      const bit = pick % (covered * 8);
      const flipped = Buffer.from(bytes);
      flipped[12 + (bit >> 3)]! ^= 1 << (bit & 7);
      return !parseDatagram(flipped, rules).ok;
    }),
    { numRuns: RUNS * 3 },
  );
  t.pass(`${RUNS * 3} bit flips`);
});
