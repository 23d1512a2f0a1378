// VRRPv3 advertisements for IPv4 (RFC 5798 section 5): encoding, and the
// receive checks of section 7.1 applied to a whole IPv4 datagram as the raw
// socket delivers it. Pure functions, no I/O.
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |(rsvd) |     Max Adver Int     |          Checksum             |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                       IPv4 Address(es)                        |
//
// The checksum covers the VRRP message and an IPv4 pseudo-header (source,
// destination, zero, protocol 112, VRRP length), as keepalived computes it
// for vrrp_version 3.

export const VRRP_PROTOCOL = 112;
export const VRRP_VERSION = 3;
export const VRRP_TYPE_ADVERTISEMENT = 1;
export const VRRP_MULTICAST_GROUP = '224.0.0.18';
/** RFC 5798 5.1.1.3: sent with TTL 255, anything else came through a router. */
export const VRRP_TTL = 255;
const VRRP_HEADER_BYTES = 8;
const IPV4_MIN_HEADER_BYTES = 20;
/** Max Adver Int is 12 bits of centiseconds. */
export const MAX_ADVER_INT_CS = 0xfff;

export interface Advertisement {
  vrid: number;
  priority: number;
  /** Max Adver Int, centiseconds (1..4095). */
  intervalCs: number;
  /** IPv4 addresses in dotted form, in packet order. */
  addresses: string[];
}

/** A received advert that passed every check, with where it came from. */
export interface ReceivedAdvertisement extends Advertisement {
  source: string;
  destination: string;
}

/** Why a datagram was dropped; each is a counter in HaStatus.counters. */
export type DropReason =
  | 'truncated' // shorter than its headers, or than its own length fields say
  | 'badTtl'
  | 'badVersion'
  | 'badType'
  | 'badChecksum'
  | 'notVrrp' // IP protocol other than 112 (cannot happen on this socket; checked anyway)
  | 'vridMismatch'
  | 'addressMismatch'
  | 'notPeer'; // unicast mode: source is not a configured peer

export type ParseResult = { ok: true; advert: ReceivedAdvertisement } | { ok: false; reason: DropReason; detail: string };

/** What the receiver checks a datagram against. */
export interface ReceiveRules {
  vrid: number;
  /** Our virtual IPs (address only), compared with the advert's list as a set. */
  addresses: readonly string[];
}

/** The VRRP message (no IP header) with its checksum for `source` → `destination`. */
export function encodeAdvertisement(advert: Advertisement, source: string, destination: string): Buffer {
  if (advert.addresses.length > 255) throw new RangeError('at most 255 addresses in one advertisement');
  const packet = Buffer.alloc(VRRP_HEADER_BYTES + 4 * advert.addresses.length);
  packet[0] = (VRRP_VERSION << 4) | VRRP_TYPE_ADVERTISEMENT;
  packet[1] = advert.vrid;
  packet[2] = advert.priority;
  packet[3] = advert.addresses.length;
  packet.writeUInt16BE(advert.intervalCs & MAX_ADVER_INT_CS, 4); // the 4 reserved bits stay 0
  advert.addresses.forEach((address, i) => ipv4ToBytes(address).copy(packet, VRRP_HEADER_BYTES + 4 * i));
  packet.writeUInt16BE(vrrpChecksum(packet, source, destination), 6);
  return packet;
}

/**
 * Apply RFC 5798 7.1's checks to one IPv4 datagram (header included), in the
 * RFC's order: TTL, version, completeness, checksum, VRID, then the address
 * list (which an address owner, priority 255, may differ in). Never throws.
 */
export function parseDatagram(datagram: Uint8Array, rules: ReceiveRules): ParseResult {
  const bytes = Buffer.from(datagram.buffer, datagram.byteOffset, datagram.byteLength);
  if (bytes.length < IPV4_MIN_HEADER_BYTES) return drop('truncated', `${bytes.length} bytes, no IPv4 header`);
  if (bytes[0]! >> 4 !== 4) return drop('truncated', 'not an IPv4 header');
  const headerBytes = (bytes[0]! & 0x0f) * 4;
  const totalLength = bytes.readUInt16BE(2);
  if (headerBytes < IPV4_MIN_HEADER_BYTES || totalLength < headerBytes || bytes.length < totalLength) {
    return drop('truncated', `IPv4 header ${headerBytes} bytes, total length ${totalLength}, received ${bytes.length}`);
  }
  const ttl = bytes[8]!;
  if (bytes[9] !== VRRP_PROTOCOL) return drop('notVrrp', `IP protocol ${bytes[9]}`);
  const source = bytesToIpv4(bytes, 12);
  const destination = bytesToIpv4(bytes, 16);
  if (ttl !== VRRP_TTL) return drop('badTtl', `TTL ${ttl} from ${source}`);
  // The IP total length bounds the message: trailing link padding is not part of it.
  const vrrp = bytes.subarray(headerBytes, totalLength);
  if (vrrp.length < VRRP_HEADER_BYTES) return drop('truncated', `${vrrp.length}-byte VRRP message from ${source}`);
  const version = vrrp[0]! >> 4;
  if (version !== VRRP_VERSION) return drop('badVersion', `version ${version} from ${source}`);
  const count = vrrp[3]!;
  const expectedLength = VRRP_HEADER_BYTES + 4 * count;
  if (vrrp.length < expectedLength) {
    return drop('truncated', `${count} addresses need ${expectedLength} bytes, got ${vrrp.length} from ${source}`);
  }
  const message = vrrp.subarray(0, expectedLength);
  // Summing the message with its checksum in place gives 0 when it is intact.
  if (vrrpChecksum(message, source, destination) !== 0) {
    return drop('badChecksum', `checksum 0x${message.readUInt16BE(6).toString(16)} from ${source}`);
  }
  const type = vrrp[0]! & 0x0f;
  if (type !== VRRP_TYPE_ADVERTISEMENT) return drop('badType', `type ${type} from ${source}`);
  const vrid = vrrp[1]!;
  if (vrid !== rules.vrid) return drop('vridMismatch', `VRID ${vrid} from ${source}`);
  const priority = vrrp[2]!;
  const addresses: string[] = [];
  for (let i = 0; i < count; i++) addresses.push(bytesToIpv4(message, VRRP_HEADER_BYTES + 4 * i));
  if (priority !== 255 && !sameSet(addresses, rules.addresses)) {
    return drop('addressMismatch', `addresses [${addresses.join(', ')}] from ${source}, ours [${rules.addresses.join(', ')}]`);
  }
  const intervalCs = message.readUInt16BE(4) & MAX_ADVER_INT_CS;
  return { ok: true, advert: { vrid, priority, intervalCs, addresses, source, destination } };
}

/** One's complement sum over the IPv4 pseudo-header and `message`, complemented. */
export function vrrpChecksum(message: Uint8Array, source: string, destination: string): number {
  const pseudo = Buffer.alloc(12);
  ipv4ToBytes(source).copy(pseudo, 0);
  ipv4ToBytes(destination).copy(pseudo, 4);
  pseudo[9] = VRRP_PROTOCOL;
  pseudo.writeUInt16BE(message.length, 10);
  let sum = sum16(pseudo, 0) + sum16(message, 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function sum16(bytes: Uint8Array, start: number): number {
  let sum = start;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if (bytes.length % 2 === 1) sum += bytes[bytes.length - 1]! << 8;
  return sum;
}

export function ipv4ToBytes(address: string): Buffer {
  const parts = address.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new TypeError(`not an IPv4 address: ${address}`);
  }
  return Buffer.from(parts);
}

/** The address as an unsigned 32-bit number, for RFC 5798's "greater primary address" tie-break. */
export function ipv4ToNumber(address: string): number {
  return ipv4ToBytes(address).readUInt32BE(0);
}

function bytesToIpv4(bytes: Uint8Array, offset: number): string {
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const left = new Set(a);
  const right = new Set(b);
  return left.size === right.size && [...left].every((x) => right.has(x));
}

function drop(reason: DropReason, detail: string): ParseResult {
  return { ok: false, reason, detail };
}
