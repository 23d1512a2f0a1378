// Session sync's wire format (src/sync/wire.ts): a message round-trips, and
// every kind of damage, and random and mutated datagrams, are rejected with
// their reason; and the replay window (src/sync/replay-window.ts). No sockets.
// (test/engine/session-sync.test.ts: two engines syncing over loopback.)
import t from 'tap';
import { createHmac, randomBytes } from 'node:crypto';
import type { SessionRecord } from '../../src/engine/sync-records.js';
import { ReplayWindow } from '../../src/sync/replay-window.js';
import { decodeMessage, encodeMessage, MAX_DATAGRAM_BYTES, MAX_RECORDS, serviceId } from '../../src/sync/wire.js';

const KEY = Buffer.from('a unit-test key of 32 bytes!!!!!');
const header = { incarnation: 1000n, sequence: 1n, sentAt: Date.now() };
const records: SessionRecord[] = [
  { kind: 'sticky', service: 'pg', backend: '10.0.0.1:5432', ageMs: 1500, key: 0x1234_5678_9abc_def0n },
  { kind: 'udp', service: 'game', backend: '[2001:db8::7]:27015', ageMs: 0, key: 0xffff_ffff_ffff_fff1n },
];

t.test('wire: a message round-trips; ids come from the service name', async (t) => {
  const message = encodeMessage(KEY, header, records);
  t.equal(message.length, 32 + 2 * 48 + 32, 'header, two 48-byte records, MAC');
  const decoded = decodeMessage(KEY, message);
  t.ok(decoded.ok, 'decodes');
  if (!decoded.ok) return;
  t.same(decoded.header, header, 'header');
  t.same(decoded.records.map((r) => ({ ...r, serviceId: r.serviceId === serviceId(records.find((x) => x.backend === r.backend)!.service) })), [
    { kind: 'sticky', serviceId: true, backend: '10.0.0.1:5432', ageMs: 1500, key: 0x1234_5678_9abc_def0n },
    { kind: 'udp', serviceId: true, backend: '[2001:db8::7]:27015', ageMs: 0, key: 0xffff_ffff_ffff_fff1n },
  ], 'records, IPv4 and IPv6 backends in the config\'s canonical text');
  t.throws(() => encodeMessage(KEY, header, []), RangeError, 'an empty message is not sent');
  const full = Array.from({ length: MAX_RECORDS }, () => records[0]!);
  t.ok(encodeMessage(KEY, header, full).length <= MAX_DATAGRAM_BYTES, `${MAX_RECORDS} records fit in ${MAX_DATAGRAM_BYTES} bytes`);
  t.throws(() => encodeMessage(KEY, header, [...full, records[0]!]), RangeError, 'one more does not');
});

t.test('wire: every kind of damage is rejected with its reason', async (t) => {
  const good = encodeMessage(KEY, header, records);
  const tamper = (f: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(good);
    f(b);
    return b;
  };
  const resign = (b: Buffer): Buffer => {
    const body = b.subarray(0, b.length - 32);
    return Buffer.concat([body, encodeMac(body)]);
  };
  const encodeMac = (body: Buffer): Buffer => createHmac('sha256', KEY).update(body).digest();
  const cases: Array<[string, Buffer, string]> = [
    ['empty', Buffer.alloc(0), 'truncated'],
    ['header only', good.subarray(0, 40), 'truncated'],
    ['oversized', Buffer.alloc(MAX_DATAGRAM_BYTES + 1), 'tooLarge'],
    ['magic', tamper((b) => b.write('XXXX', 0)), 'badMagic'],
    ['version', tamper((b) => b.writeUInt8(2, 4)), 'badVersion'],
    ['count too high', tamper((b) => b.writeUInt16BE(3, 6)), 'badLength'],
    ['count zero', tamper((b) => b.writeUInt16BE(0, 6)), 'badLength'],
    ['trailing byte', Buffer.concat([good, Buffer.alloc(1)]), 'badLength'],
    ['one bit of a record', tamper((b) => (b[40] ^= 1)), 'badMac'],
    ['one bit of the MAC', tamper((b) => (b[b.length - 1] ^= 1)), 'badMac'],
    ['wrong key', encodeMessage(Buffer.from('another key of thirty-two bytes!'), header, records), 'badMac'],
    ['flags set (signed)', resign(tamper((b) => b.writeUInt8(1, 5))), 'badRecord'],
    ['unknown kind (signed)', resign(tamper((b) => b.writeUInt8(9, 32))), 'badRecord'],
    ['bad family (signed)', resign(tamper((b) => b.writeUInt8(5, 33))), 'badRecord'],
    ['port 0 (signed)', resign(tamper((b) => b.writeUInt16BE(0, 34))), 'badRecord'],
    ['reserved bytes (signed)', resign(tamper((b) => b.writeUInt8(1, 32 + 47))), 'badRecord'],
    ['IPv4 with trailing address bytes (signed)', resign(tamper((b) => b.writeUInt8(1, 32 + 30))), 'badRecord'],
  ];
  for (const [what, datagram, reason] of cases) {
    const result = decodeMessage(KEY, datagram);
    t.same(result, { ok: false, reason }, `${what}: ${reason}`);
  }
});

t.test('wire: 1,000 random and mutated datagrams are all rejected', async (t) => {
  const good = encodeMessage(KEY, header, records);
  let accepted = 0;
  for (let i = 0; i < 1000; i++) {
    let datagram: Buffer;
    if (i % 2 === 0) {
      datagram = randomBytes(1 + (i % MAX_DATAGRAM_BYTES));
      if (i % 4 === 0) good.copy(datagram, 0, 0, Math.min(32, datagram.length)); // a plausible header
    } else {
      datagram = Buffer.from(good);
      datagram[i % datagram.length]! ^= 1 + (i % 255);
    }
    if (decodeMessage(KEY, datagram).ok) accepted++;
  }
  t.equal(accepted, 0, 'none accepted');
});

t.test('replay window: once per sequence, reordering within 64 tolerated, old incarnations refused', async (t) => {
  const w = new ReplayWindow();
  t.ok(w.accept('a', 5n, 10n), 'first');
  t.notOk(w.accept('a', 5n, 10n), 'the same again: replay');
  t.ok(w.accept('a', 5n, 12n), 'ahead');
  t.ok(w.accept('a', 5n, 11n), 'a late one inside the window');
  t.notOk(w.accept('a', 5n, 11n), 'that one again');
  t.ok(w.accept('a', 5n, 200n), 'far ahead');
  t.notOk(w.accept('a', 5n, 100n), 'behind the window');
  t.notOk(w.accept('a', 4n, 1000n), 'an older incarnation');
  t.ok(w.accept('a', 6n, 1n), 'a newer incarnation (the peer restarted) starts over');
  t.ok(w.accept('b', 1n, 1n), 'senders are apart');
  t.equal(w.incarnation('a'), 6n, 'incarnation kept');
});
