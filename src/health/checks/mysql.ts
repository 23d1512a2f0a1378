// mysql: the MySQL/MariaDB client/server protocol.
//
// Without a user: read the server greeting (Initial Handshake v10); an error
// packet instead (too many connections, host blocked) fails. Closing after the
// greeting is what HAProxy's mysql-check does without a user; servers count it
// as an aborted connect, so give the check a user where you can.
//
// With a user: answer the greeting with mysql_native_password (the default of
// MariaDB and MySQL 5.7; an auth switch to it is followed), run
// `SELECT @@read_only` and report primary (0) or replica (1), then COM_QUIT.
import { createHash } from 'node:crypto';
import { CheckFailure } from '../../errors.js';
import { converse, type Conversation, type ReplyParser } from '../conversation.js';
import type { Probe, ProbeResult } from '../probe.js';

const CLIENT_LONG_PASSWORD = 0x1;
const CLIENT_LONG_FLAG = 0x4;
const CLIENT_CONNECT_WITH_DB = 0x8;
const CLIENT_PROTOCOL_41 = 0x200;
const CLIENT_TRANSACTIONS = 0x2000;
const CLIENT_SECURE_CONNECTION = 0x8000;
const CLIENT_PLUGIN_AUTH = 0x80000;
const UTF8MB4_GENERAL_CI = 45;
const NATIVE_PASSWORD = 'mysql_native_password';
const COM_QUIT = 0x01;
const COM_QUERY = 0x03;

interface Packet {
  sequence: number;
  payload: Buffer;
}

const parsePacket: ReplyParser<Packet> = (buffer) => {
  if (buffer.length < 4) return undefined;
  const length = buffer.readUIntLE(0, 3);
  if (buffer.length < 4 + length) return undefined;
  return { value: { sequence: buffer[3]!, payload: buffer.subarray(4, 4 + length) }, used: 4 + length };
};

function packet(sequence: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header.writeUIntLE(payload.length, 0, 3);
  header[3] = sequence & 0xff;
  return Buffer.concat([header, payload]);
}

function describeError(payload: Buffer): string {
  // 0xff, a 2-byte code, then (4.1 protocol) '#' and a 5-byte SQLSTATE, then the message.
  if (payload.length < 3) return `malformed error packet (${payload.length} bytes)`;
  const code = payload.readUInt16LE(1);
  const text = payload[3] === 0x23 ? payload.toString('utf8', 9) : payload.toString('utf8', 3);
  return `${code} ${text.slice(0, 160)}`;
}

interface Greeting {
  version: string;
  scramble: Buffer;
  plugin: string;
}

function parseGreeting(payload: Buffer): Greeting {
  if (payload[0] === 0xff) throw new CheckFailure(`server refused: ${describeError(payload)}`);
  if (payload[0] !== 10) throw new CheckFailure(`not a MySQL greeting (protocol ${payload[0]})`);
  const versionEnd = payload.indexOf(0, 1);
  if (versionEnd < 0 || payload.length < versionEnd + 1 + 4 + 8 + 1 + 2) throw new CheckFailure('truncated MySQL greeting');
  const version = payload.toString('latin1', 1, versionEnd);
  let at = versionEnd + 1 + 4; // connection id
  const part1 = payload.subarray(at, at + 8);
  at += 8 + 1; // filler
  const capabilities = payload.readUInt16LE(at);
  at += 2;
  let part2: Buffer = Buffer.alloc(0);
  let plugin = NATIVE_PASSWORD;
  if (payload.length >= at + 1 + 2 + 2 + 1 + 10) {
    const upper = payload.readUInt16LE(at + 3);
    const dataLength = payload[at + 5]!;
    at += 1 + 2 + 2 + 1 + 10;
    const all = capabilities | (upper << 16);
    if (all & CLIENT_SECURE_CONNECTION) {
      const n = Math.max(13, dataLength - 8);
      part2 = payload.subarray(at, at + n - 1); // the last byte is a NUL
      at += n;
    }
    if (all & CLIENT_PLUGIN_AUTH) {
      const end = payload.indexOf(0, at);
      plugin = payload.toString('latin1', at, end < 0 ? payload.length : end);
    }
  }
  return { version, scramble: Buffer.concat([part1, part2]).subarray(0, 20), plugin };
}

/** SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))); empty for an empty password. */
function nativePassword(password: string, scramble: Buffer): Buffer {
  if (password === '') return Buffer.alloc(0);
  const sha1 = (data: Buffer): Buffer => createHash('sha1').update(data).digest();
  const stage1 = sha1(Buffer.from(password, 'utf8'));
  const stage2 = sha1(stage1);
  const mix = sha1(Buffer.concat([scramble, stage2]));
  for (let i = 0; i < mix.length; i++) mix[i]! ^= stage1[i]!;
  return mix;
}

export const mysqlProbe: Probe = ({ host, port, check, password }) =>
  converse(host, port, check.timeoutMs, async (c): Promise<ProbeResult> => {
    c.stage = 'waiting for the greeting';
    const greeting = parseGreeting((await c.read(parsePacket)).payload);
    if (check.user === undefined) return { ok: true, detail: `greeting from ${greeting.version}` };
    await logIn(c, check.user, check.database, password ?? '', greeting);
    return readOnlyState(c, greeting.version);
  });

async function logIn(c: Conversation, user: string, database: string | undefined, password: string, greeting: Greeting): Promise<void> {
  const caps =
    CLIENT_LONG_PASSWORD | CLIENT_LONG_FLAG | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH |
    (database ? CLIENT_CONNECT_WITH_DB : 0);
  const head = Buffer.alloc(4 + 4 + 1 + 23);
  head.writeUInt32LE(caps >>> 0, 0);
  head.writeUInt32LE(16 * 1024 * 1024, 4);
  head[8] = UTF8MB4_GENERAL_CI;
  const auth = nativePassword(password, greeting.scramble);
  const parts = [head, Buffer.from(`${user}\0`, 'utf8'), Buffer.from([auth.length]), auth];
  if (database) parts.push(Buffer.from(`${database}\0`, 'utf8'));
  parts.push(Buffer.from(`${NATIVE_PASSWORD}\0`, 'latin1'));
  c.write(packet(1, Buffer.concat(parts)));
  c.stage = 'waiting for the login answer';
  for (let round = 0; round < 3; round++) {
    const reply = await c.read(parsePacket);
    const kind = reply.payload[0];
    if (kind === 0x00) return;
    if (kind === 0xff) throw new CheckFailure(`login refused: ${describeError(reply.payload)}`);
    if (kind === 0xfe) {
      // Auth switch request: plugin name, then the new scramble.
      const end = reply.payload.indexOf(0, 1);
      const plugin = reply.payload.toString('latin1', 1, end < 0 ? reply.payload.length : end);
      if (plugin !== NATIVE_PASSWORD) throw new CheckFailure(`auth plugin ${plugin} is not supported; give the check user mysql_native_password`);
      const scramble = reply.payload.subarray(end + 1, end + 1 + 20);
      c.write(packet(reply.sequence + 1, nativePassword(password, scramble)));
      continue;
    }
    throw new CheckFailure(`unexpected login answer 0x${(kind ?? 0).toString(16)}`);
  }
  throw new CheckFailure('login did not finish');
}

/** A length-encoded integer at `at`: its value and size. */
function lengthEncoded(payload: Buffer, at: number): { value: number; size: number } {
  const first = payload[at];
  if (first === undefined) throw new CheckFailure('truncated packet: no length-encoded integer');
  const size = first === 0xfc ? 3 : first === 0xfd ? 4 : first === 0xfe ? 9 : 1;
  if (payload.length < at + size) throw new CheckFailure(`truncated length-encoded integer (${payload.length - at} of ${size} bytes)`);
  if (first < 0xfb) return { value: first, size: 1 };
  if (first === 0xfc) return { value: payload.readUInt16LE(at + 1), size: 3 };
  if (first === 0xfd) return { value: payload.readUIntLE(at + 1, 3), size: 4 };
  if (first === 0xfe) return { value: Number(payload.readBigUInt64LE(at + 1)), size: 9 };
  throw new CheckFailure('NULL where a length was expected');
}

async function readOnlyState(c: Conversation, version: string): Promise<ProbeResult> {
  c.write(packet(0, Buffer.concat([Buffer.from([COM_QUERY]), Buffer.from('SELECT @@read_only', 'latin1')])));
  c.stage = 'waiting for @@read_only';
  const head = (await c.read(parsePacket)).payload;
  if (head[0] === 0xff) throw new CheckFailure(`query failed: ${describeError(head)}`);
  const columns = lengthEncoded(head, 0).value;
  for (let i = 0; i < columns; i++) await c.read(parsePacket);
  const isEof = (p: Buffer): boolean => p[0] === 0xfe && p.length < 9;
  if (!isEof((await c.read(parsePacket)).payload)) throw new CheckFailure('no EOF after the column definitions');
  let value: string | undefined;
  for (;;) {
    const row = (await c.read(parsePacket)).payload;
    if (isEof(row)) break;
    if (row[0] === 0xff) throw new CheckFailure(`query failed: ${describeError(row)}`);
    if (row[0] === 0xfb) continue;
    const { value: length, size } = lengthEncoded(row, 0);
    // A value longer than its packet would be read short: refused, not taken for '0' or '1'.
    if (row.length < size + length) throw new CheckFailure(`truncated row (${row.length} bytes, value of ${length})`);
    value = row.toString('latin1', size, size + length);
  }
  c.write(packet(0, Buffer.from([COM_QUIT])));
  if (value === '0') return { ok: true, detail: `${version}, read_only off: role primary`, role: 'primary' };
  if (value === '1') return { ok: true, detail: `${version}, read_only on: role replica`, role: 'replica' };
  throw new CheckFailure(`@@read_only returned ${JSON.stringify(value ?? null)}`);
}
