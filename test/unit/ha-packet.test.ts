// VRRPv3 packets: the encoder's bytes, the checksum over the IPv4
// pseudo-header, and every receive check of RFC 5798 7.1 on whole datagrams.
import t from 'tap';
import { encodeAdvertisement, parseDatagram, vrrpChecksum, type DropReason } from '../../src/ha/packet.js';

const SOURCE = '10.200.0.1';
const GROUP = '224.0.0.18';
const RULES = { vrid: 51, addresses: ['10.200.0.100'] };
const ADVERT = { vrid: 51, priority: 150, intervalCs: 10, addresses: ['10.200.0.100'] };

/** An IPv4 header (checksum left 0: the kernel fills it, receivers of a raw socket do not check it here). */
function ipv4(payload: Buffer, { ttl = 255, protocol = 112, source = SOURCE, destination = GROUP, totalLength }: {
  ttl?: number; protocol?: number; source?: string; destination?: string; totalLength?: number;
} = {}): Buffer {
  const header = Buffer.alloc(20);
  header[0] = 0x45;
  header.writeUInt16BE(totalLength ?? 20 + payload.length, 2);
  header[8] = ttl;
  header[9] = protocol;
  Buffer.from(source.split('.').map(Number)).copy(header, 12);
  Buffer.from(destination.split('.').map(Number)).copy(header, 16);
  return Buffer.concat([header, payload]);
}

t.test('the encoder writes RFC 5798 section 5 bytes', async (t) => {
  const packet = encodeAdvertisement(ADVERT, SOURCE, GROUP);
  t.equal(packet.length, 12);
  t.same([...packet.subarray(0, 6)], [0x31, 51, 150, 1, 0x00, 10], 'version 3, type 1, VRID, priority, count, reserved bits 0 and 10cs');
  t.same([...packet.subarray(8)], [10, 200, 0, 100], 'the address');
  // The checksum by hand: pseudo-header words + message words, folded, complemented.
  const words = [0x0ac8, 0x0001, 0xe000, 0x0012, 0x0070, 0x000c, 0x3133, 0x9601, 0x000a, 0x0000, 0x0ac8, 0x0064];
  let sum = words.reduce((a, b) => a + b, 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  t.equal(packet.readUInt16BE(6), ~sum & 0xffff, 'checksum includes the IPv4 pseudo-header');
  t.equal(vrrpChecksum(packet, SOURCE, GROUP), 0, 'an intact message sums to 0');
  t.not(vrrpChecksum(packet, '10.200.0.2', GROUP), 0, 'another source address breaks the checksum (pseudo-header)');
  const wide = encodeAdvertisement({ ...ADVERT, intervalCs: 4095 }, SOURCE, GROUP);
  t.equal(wide.readUInt16BE(4), 0x0fff, 'the 12-bit maximum interval');
});

t.test('a valid advert is accepted with what it says', async (t) => {
  const result = parseDatagram(ipv4(encodeAdvertisement(ADVERT, SOURCE, GROUP)), RULES);
  t.same(result, { ok: true, advert: { ...ADVERT, source: SOURCE, destination: GROUP } });
  const padded = ipv4(Buffer.concat([encodeAdvertisement(ADVERT, SOURCE, GROUP), Buffer.alloc(6)]), { totalLength: 32 });
  t.ok(parseDatagram(padded, RULES).ok, 'link padding after the IP total length is ignored');
});

t.test('every bad datagram is dropped with its reason', async (t) => {
  const good = encodeAdvertisement(ADVERT, SOURCE, GROUP);
  const resum = (packet: Buffer): Buffer => {
    packet.writeUInt16BE(0, 6);
    packet.writeUInt16BE(vrrpChecksum(packet, SOURCE, GROUP), 6);
    return packet;
  };
  const cases: Array<[string, Buffer, DropReason]> = [
    ['empty', Buffer.alloc(0), 'truncated'],
    ['half an IP header', ipv4(good).subarray(0, 12), 'truncated'],
    ['IP total length beyond the data', ipv4(good, { totalLength: 200 }), 'truncated'],
    ['IPv6 version nibble', Buffer.concat([Buffer.from([0x60]), ipv4(good).subarray(1)]), 'truncated'],
    ['TTL 64', ipv4(good, { ttl: 64 }), 'badTtl'],
    ['TTL 254', ipv4(good, { ttl: 254 }), 'badTtl'],
    ['not protocol 112', ipv4(good, { protocol: 17 }), 'notVrrp'],
    ['6-byte VRRP message', ipv4(good.subarray(0, 6)), 'truncated'],
    ['version 2', ipv4(resum(Buffer.concat([Buffer.from([0x21]), good.subarray(1)]))), 'badVersion'],
    ['count says 2, one address', ipv4(resum(Buffer.concat([good.subarray(0, 3), Buffer.from([2]), good.subarray(4)]))), 'truncated'],
    ['checksum off by one', ipv4(Buffer.concat([good.subarray(0, 6), Buffer.from([good[6]!, good[7]! ^ 1]), good.subarray(8)])), 'badChecksum'],
    ['checksum for another source', ipv4(good, { source: '10.200.0.9' }), 'badChecksum'],
    ['type 2', ipv4(resum(Buffer.concat([Buffer.from([0x32]), good.subarray(1)]))), 'badType'],
    ['VRID 52', ipv4(encodeAdvertisement({ ...ADVERT, vrid: 52 }, SOURCE, GROUP)), 'vridMismatch'],
    ['another address list', ipv4(encodeAdvertisement({ ...ADVERT, addresses: ['10.200.0.99'] }, SOURCE, GROUP)), 'addressMismatch'],
    ['an extra address', ipv4(encodeAdvertisement({ ...ADVERT, addresses: ['10.200.0.100', '10.200.0.101'] }, SOURCE, GROUP)), 'addressMismatch'],
  ];
  for (const [what, datagram, reason] of cases) {
    const result = parseDatagram(datagram, RULES);
    t.equal(result.ok ? 'accepted' : result.reason, reason, what);
  }
  const owner = parseDatagram(ipv4(encodeAdvertisement({ ...ADVERT, priority: 255, addresses: ['10.200.0.99'] }, SOURCE, GROUP)), RULES);
  t.ok(owner.ok, 'the address owner (priority 255) may list other addresses (RFC 5798 7.1)');
});

t.test('random bytes never throw', async (t) => {
  let accepted = 0;
  for (let i = 0; i < 20_000; i++) {
    const bytes = Buffer.alloc(Math.floor(Math.random() * 80));
    for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(Math.random() * 256);
    if (bytes.length > 0 && i % 2 === 0) bytes[0] = 0x45; // half of them look like IPv4
    if (parseDatagram(bytes, RULES).ok) accepted++;
  }
  t.equal(accepted, 0, 'no random datagram passes every check');
});
