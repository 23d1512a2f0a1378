// The session-sync message (docs/ecmp.md, "Wire format"): one UDP datagram,
// authenticated with HMAC-SHA256 under the key every node shares.
//
//   offset size  field
//   0      4     magic "FLSY"
//   4      1     version (1)
//   5      1     flags: 0 (changes), or FLAG_RESYNC_REQUEST alone, or
//                FLAG_BULK with FLAG_BULK_END on the last message of a full copy
//   6      2     record count n (0..MAX_RECORDS; 0 only for a request or a copy's end)
//   8      8     incarnation: the sender's start time in ms since the epoch
//   16     8     sequence: 1, 2, 3... per incarnation
//   24     8     sent at, ms since the epoch
//   32     48*n  records (below)
//   32+48n 32    HMAC-SHA256 over everything before it
//
//   record: 0 kind (1 sticky, 2 udp flow) | 1 backend family (4, 6) |
//           2 backend port (u16) | 4 age ms (u32) | 8 service id (u64: the
//           first 8 bytes of SHA-256 of the service name) | 16 key (u64, the
//           engine's hash: client address or 5-tuple) | 24 backend address
//           (16 bytes; IPv4 in the first 4, the rest 0) | 40 reserved (8 zero bytes)
//
// Integers are big-endian. Decoding checks the bounds first, then the MAC
// (constant time), then each record; any failure rejects the whole datagram
// with one reason, and a rejected datagram changes nothing.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { isIPv4 } from 'node:net';
import type { SessionKind, SessionRecord } from '../engine/sync-records.js';

export const MAGIC = Buffer.from('FLSY', 'latin1');
export const VERSION = 1;
export const HEADER_BYTES = 32;
export const RECORD_BYTES = 48;
export const MAC_BYTES = 32;
/** A datagram stays below a 1500-byte MTU with IP and UDP headers. */
export const MAX_DATAGRAM_BYTES = 1400;
export const MAX_RECORDS = Math.floor((MAX_DATAGRAM_BYTES - HEADER_BYTES - MAC_BYTES) / RECORD_BYTES);

/** "Send me your state": the sender (re)started. No records. */
export const FLAG_RESYNC_REQUEST = 0x01;
/** The records are part of a full copy for the receiver, not changes. */
export const FLAG_BULK = 0x02;
/** With FLAG_BULK: the last message of the copy (may hold no records). */
export const FLAG_BULK_END = 0x04;

/** Whether `flags` is one of the combinations a message of `count` records may carry. */
export function validFlags(flags: number, count: number): boolean {
  switch (flags) {
    case 0:
    case FLAG_BULK:
      return count >= 1;
    case FLAG_RESYNC_REQUEST:
      return count === 0;
    case FLAG_BULK | FLAG_BULK_END:
      return true;
    default:
      return false;
  }
}

export type RejectReason =
  | 'truncated'
  | 'tooLarge'
  | 'badMagic'
  | 'badVersion'
  | 'badLength'
  | 'badMac'
  | 'badRecord'
  | 'stale'
  | 'replay'
  | 'notPeer';

export const REJECT_REASONS: readonly RejectReason[] = [
  'truncated',
  'tooLarge',
  'badMagic',
  'badVersion',
  'badLength',
  'badMac',
  'badRecord',
  'stale',
  'replay',
  'notPeer',
];

export interface MessageHeader {
  incarnation: bigint;
  sequence: bigint;
  sentAt: number;
}

/** A record on the wire: the service by id (resolved by the receiver against its own names). */
export interface WireRecord {
  kind: SessionKind;
  serviceId: bigint;
  backend: string;
  ageMs: number;
  key: bigint;
}

export type DecodeResult = { ok: true; header: MessageHeader; flags: number; records: WireRecord[] } | { ok: false; reason: RejectReason };

/** The config-derived id of a service name: the same on every node. */
export function serviceId(name: string): bigint {
  return createHash('sha256').update(name, 'utf8').digest().readBigUInt64BE(0);
}

/** Encode one datagram of at most MAX_RECORDS records (none only for a request or a copy's end). */
export function encodeMessage(key: Buffer, header: MessageHeader, records: readonly SessionRecord[], flags = 0): Buffer {
  if (records.length > MAX_RECORDS) throw new RangeError(`a sync message holds at most ${MAX_RECORDS} records`);
  if (!validFlags(flags, records.length)) throw new RangeError(`flags ${flags} with ${records.length} records: a change holds 1 to ${MAX_RECORDS}, a request none`);
  const body = Buffer.alloc(HEADER_BYTES + records.length * RECORD_BYTES);
  MAGIC.copy(body, 0);
  body.writeUInt8(VERSION, 4);
  body.writeUInt8(flags, 5);
  body.writeUInt16BE(records.length, 6);
  body.writeBigUInt64BE(header.incarnation, 8);
  body.writeBigUInt64BE(header.sequence, 16);
  body.writeBigUInt64BE(BigInt(header.sentAt), 24);
  records.forEach((r, i) => encodeRecord(body, HEADER_BYTES + i * RECORD_BYTES, r));
  return Buffer.concat([body, createHmac('sha256', key).update(body).digest()]);
}

function encodeRecord(out: Buffer, offset: number, r: SessionRecord): void {
  const { host, port } = splitAddress(r.backend);
  const v4 = isIPv4(host);
  out.writeUInt8(r.kind === 'sticky' ? 1 : 2, offset);
  out.writeUInt8(v4 ? 4 : 6, offset + 1);
  out.writeUInt16BE(port, offset + 2);
  out.writeUInt32BE(Math.min(Math.max(0, Math.trunc(r.ageMs)), 0xffffffff), offset + 4);
  out.writeBigUInt64BE(serviceId(r.service), offset + 8);
  out.writeBigUInt64BE(r.key, offset + 16);
  if (v4) host.split('.').forEach((part, i) => out.writeUInt8(Number(part), offset + 24 + i));
  else ipv6Bytes(host).copy(out, offset + 24);
}

/** Check and decode one datagram. */
export function decodeMessage(key: Buffer, datagram: Buffer): DecodeResult {
  if (datagram.length < HEADER_BYTES + MAC_BYTES) return { ok: false, reason: 'truncated' };
  if (datagram.length > MAX_DATAGRAM_BYTES) return { ok: false, reason: 'tooLarge' };
  if (!datagram.subarray(0, 4).equals(MAGIC)) return { ok: false, reason: 'badMagic' };
  if (datagram.readUInt8(4) !== VERSION) return { ok: false, reason: 'badVersion' };
  const count = datagram.readUInt16BE(6);
  if (count > MAX_RECORDS || datagram.length !== HEADER_BYTES + count * RECORD_BYTES + MAC_BYTES) {
    return { ok: false, reason: 'badLength' };
  }
  const bodyLength = datagram.length - MAC_BYTES;
  const expected = createHmac('sha256', key).update(datagram.subarray(0, bodyLength)).digest();
  if (!timingSafeEqual(expected, datagram.subarray(bodyLength))) return { ok: false, reason: 'badMac' };
  const flags = datagram.readUInt8(5);
  if (!validFlags(flags, count)) return { ok: false, reason: 'badRecord' };
  const header: MessageHeader = {
    incarnation: datagram.readBigUInt64BE(8),
    sequence: datagram.readBigUInt64BE(16),
    sentAt: Number(datagram.readBigUInt64BE(24)),
  };
  const records: WireRecord[] = [];
  for (let i = 0; i < count; i++) {
    const record = decodeRecord(datagram, HEADER_BYTES + i * RECORD_BYTES);
    if (record === undefined) return { ok: false, reason: 'badRecord' };
    records.push(record);
  }
  return { ok: true, header, flags, records };
}

function decodeRecord(data: Buffer, offset: number): WireRecord | undefined {
  const code = data.readUInt8(offset);
  const family = data.readUInt8(offset + 1);
  const port = data.readUInt16BE(offset + 2);
  const key = data.readBigUInt64BE(offset + 16);
  if ((code !== 1 && code !== 2) || (family !== 4 && family !== 6) || port === 0 || key === 0n) return undefined;
  if (data.readBigUInt64BE(offset + 40) !== 0n) return undefined;
  const address = data.subarray(offset + 24, offset + 40);
  if (family === 4 && address.subarray(4).some((b) => b !== 0)) return undefined;
  const backend = family === 4 ? `${[...address.subarray(0, 4)].join('.')}:${port}` : `[${formatIpv6(address)}]:${port}`;
  return {
    kind: code === 1 ? 'sticky' : 'udp',
    serviceId: data.readBigUInt64BE(offset + 8),
    backend,
    ageMs: data.readUInt32BE(offset + 4),
    key,
  };
}

function splitAddress(text: string): { host: string; port: number } {
  const colon = text.lastIndexOf(':');
  const host = text.slice(0, colon).replace(/^\[|\]$/g, '');
  return { host, port: Number(text.slice(colon + 1)) };
}

function ipv6Bytes(host: string): Buffer {
  const [head = '', tail = ''] = host.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = host.includes('::') ? parse(tail) : [];
  const groups = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

/** The canonical (RFC 5952) text of 16 address bytes, as the config's Endpoint.text holds it
 * (the same WHATWG URL serialisation src/config/address.ts uses). */
function formatIpv6(bytes: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}
