// postgres: the frontend/backend protocol v3 (PostgreSQL docs, "Message Flow").
//
// Without a user: send a StartupMessage as "fulcrum_health" and accept any
// answer that shows a server ready to authenticate: an authentication request,
// or an error about the role or database (class 28, 3D). A server starting
// up, shutting down or out of connection slots (57P03, 57P01, 53300...) fails.
//
// With a user: log in (trust, cleartext, md5, or SCRAM-SHA-256 from node:crypto),
// run `SELECT pg_is_in_recovery()` and report primary (f) or replica (t).
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { CheckFailure } from '../../errors.js';
import { converse, type Conversation, type ReplyParser } from '../conversation.js';
import type { Probe, ProbeResult } from '../probe.js';

const PROTOCOL_3_0 = 196_608;
const ANONYMOUS_USER = 'fulcrum_health';
const MAX_MESSAGE = 1 << 20;

interface Message {
  type: string;
  body: Buffer;
}

const parseMessage: ReplyParser<Message> = (buffer) => {
  if (buffer.length < 5) return undefined;
  const length = buffer.readInt32BE(1);
  if (length < 4 || length > MAX_MESSAGE) throw new CheckFailure(`not a PostgreSQL message (length ${length})`);
  if (buffer.length < 1 + length) return undefined;
  return { value: { type: String.fromCharCode(buffer[0]!), body: buffer.subarray(5, 1 + length) }, used: 1 + length };
};

function message(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

function cstring(text: string): Buffer {
  return Buffer.concat([Buffer.from(text, 'utf8'), Buffer.from([0])]);
}

function startupMessage(user: string, database: string): Buffer {
  const params = Buffer.concat([
    cstring('user'), cstring(user),
    cstring('database'), cstring(database),
    cstring('application_name'), cstring('fulcrum-health-check'),
    Buffer.from([0]),
  ]);
  const head = Buffer.alloc(8);
  head.writeInt32BE(params.length + 8, 0);
  head.writeInt32BE(PROTOCOL_3_0, 4);
  return Buffer.concat([head, params]);
}

/** The fields of an ErrorResponse: S (severity), C (SQLSTATE), M (message)... */
function errorFields(body: Buffer): Record<string, string> {
  const fields: Record<string, string> = {};
  let at = 0;
  while (at < body.length && body[at] !== 0) {
    const code = String.fromCharCode(body[at]!);
    const end = body.indexOf(0, at + 1);
    if (end < 0) break;
    fields[code] = body.toString('utf8', at + 1, end);
    at = end + 1;
  }
  return fields;
}

/** A message body shorter than its type's fixed fields is the server's error, reported as such (not a RangeError). */
function requireBytes(body: Buffer, bytes: number, what: string): void {
  if (body.length < bytes) throw new CheckFailure(`malformed ${what} (${body.length} bytes)`);
}

function describeError(body: Buffer): string {
  const f = errorFields(body);
  return `${f.C ?? '?????'} ${(f.M ?? 'error').slice(0, 160)}`;
}

export const postgresProbe: Probe = ({ host, port, check, password }) =>
  converse(host, port, check.timeoutMs, async (c): Promise<ProbeResult> => {
    const user = check.user ?? ANONYMOUS_USER;
    c.write(startupMessage(user, check.database ?? user));
    c.stage = 'waiting for the startup answer';
    if (check.user === undefined) return anonymousAnswer(await c.read(parseMessage));
    await authenticate(c, user, password);
    return recoveryState(c);
  });

function anonymousAnswer(reply: Message): ProbeResult {
  if (reply.type === 'R') return { ok: true, detail: 'startup answered (authentication request)' };
  if (reply.type === 'E') {
    const { C: sqlstate = '' } = errorFields(reply.body);
    // The server is up and checks logins: the role or database simply is not ours.
    if (sqlstate.startsWith('28') || sqlstate === '3D000') return { ok: true, detail: `startup answered (${describeError(reply.body)})` };
    throw new CheckFailure(`startup refused: ${describeError(reply.body)}`);
  }
  throw new CheckFailure(`unexpected startup answer '${reply.type}'`);
}

/** Answer authentication requests until AuthenticationOk, then wait for ReadyForQuery. */
async function authenticate(c: Conversation, user: string, password: string | undefined): Promise<void> {
  let scram: ScramClient | undefined;
  for (;;) {
    const reply = await c.read(parseMessage);
    if (reply.type === 'E') throw new CheckFailure(`login refused: ${describeError(reply.body)}`);
    if (reply.type === 'Z') return;
    if (reply.type !== 'R') continue; // ParameterStatus, BackendKeyData, NoticeResponse
    requireBytes(reply.body, 4, 'authentication request');
    const code = reply.body.readInt32BE(0);
    const need = (): string => {
      if (password === undefined) throw new CheckFailure('the server asks for a password and none is configured');
      return password;
    };
    switch (code) {
      case 0: // AuthenticationOk
        c.stage = 'waiting for ReadyForQuery';
        break;
      case 3: // cleartext
        c.write(message('p', cstring(need())));
        break;
      case 5: { // md5: "md5" + md5(md5(password + user) + salt)
        requireBytes(reply.body, 8, 'md5 request');
        const inner = createHash('md5').update(need() + user).digest('hex');
        const outer = createHash('md5').update(Buffer.concat([Buffer.from(inner), reply.body.subarray(4, 8)])).digest('hex');
        c.write(message('p', cstring(`md5${outer}`)));
        break;
      }
      case 10: { // SASL: list of mechanisms
        const mechanisms = reply.body.subarray(4).toString('utf8').split('\0').filter(Boolean);
        if (!mechanisms.includes('SCRAM-SHA-256')) throw new CheckFailure(`no supported SASL mechanism (${mechanisms.join(', ')})`);
        scram = new ScramClient(need());
        const first = Buffer.from(scram.clientFirst());
        const length = Buffer.alloc(4);
        length.writeInt32BE(first.length);
        c.write(message('p', Buffer.concat([cstring('SCRAM-SHA-256'), length, first])));
        c.stage = 'in SCRAM authentication';
        break;
      }
      case 11: // SASLContinue
        if (!scram) throw new CheckFailure('SASL continue without a SASL start');
        c.write(message('p', Buffer.from(scram.clientFinal(reply.body.subarray(4).toString('utf8')))));
        break;
      case 12: // SASLFinal
        if (!scram) throw new CheckFailure('SASL final without a SASL start');
        scram.verifyServer(reply.body.subarray(4).toString('utf8'));
        break;
      default:
        throw new CheckFailure(`authentication method ${code} is not supported (use trust, password, md5 or scram-sha-256)`);
    }
  }
}

async function recoveryState(c: Conversation): Promise<ProbeResult> {
  c.write(message('Q', cstring('SELECT pg_is_in_recovery()')));
  c.stage = 'waiting for pg_is_in_recovery()';
  let value: string | undefined;
  for (;;) {
    const reply = await c.read(parseMessage);
    if (reply.type === 'E') throw new CheckFailure(`query failed: ${describeError(reply.body)}`);
    if (reply.type === 'D') {
      requireBytes(reply.body, 2, 'DataRow');
      if (reply.body.readInt16BE(0) !== 1) continue;
      requireBytes(reply.body, 6, 'DataRow');
      const length = reply.body.readInt32BE(2);
      // A column longer than the message would be read short: refused, not taken for 't' or 'f'.
      requireBytes(reply.body, 6 + Math.max(length, 0), 'DataRow');
      value = length < 0 ? undefined : reply.body.toString('utf8', 6, 6 + length);
    }
    if (reply.type === 'Z') break;
  }
  c.write(message('X', Buffer.alloc(0)));
  if (value === 't') return { ok: true, detail: 'in recovery: role replica', role: 'replica' };
  if (value === 'f') return { ok: true, detail: 'not in recovery: role primary', role: 'primary' };
  throw new CheckFailure(`pg_is_in_recovery() returned ${JSON.stringify(value ?? null)}`);
}

/**
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it: no channel
 * binding, the user name left empty (the startup message carries it).
 */
class ScramClient {
  readonly #password: string;
  readonly #nonce = randomBytes(18).toString('base64');
  #clientFirstBare = '';
  #serverSignature: Buffer | undefined;

  constructor(password: string) {
    this.#password = password;
  }

  clientFirst(): string {
    this.#clientFirstBare = `n=,r=${this.#nonce}`;
    return `n,,${this.#clientFirstBare}`;
  }

  clientFinal(serverFirst: string): string {
    const attrs = new Map(serverFirst.split(',').map((kv) => [kv.slice(0, 1), kv.slice(2)] as const));
    const nonce = attrs.get('r');
    const salt = attrs.get('s');
    const iterations = Number(attrs.get('i'));
    if (!nonce?.startsWith(this.#nonce) || salt === undefined || !Number.isInteger(iterations) || iterations < 1 || iterations > 1_000_000) {
      throw new CheckFailure('bad SCRAM server-first message');
    }
    // PostgreSQL applies SASLprep; ASCII passwords (the usual case) are unchanged by it.
    const salted = pbkdf2Sync(this.#password.normalize('NFKC'), Buffer.from(salt, 'base64'), iterations, 32, 'sha256');
    const clientKey = createHmac('sha256', salted).update('Client Key').digest();
    const storedKey = createHash('sha256').update(clientKey).digest();
    const finalWithoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.#clientFirstBare},${serverFirst},${finalWithoutProof}`;
    const signature = createHmac('sha256', storedKey).update(authMessage).digest();
    const proof = Buffer.alloc(32);
    for (let i = 0; i < 32; i++) proof[i] = clientKey[i]! ^ signature[i]!;
    const serverKey = createHmac('sha256', salted).update('Server Key').digest();
    this.#serverSignature = createHmac('sha256', serverKey).update(authMessage).digest();
    return `${finalWithoutProof},p=${proof.toString('base64')}`;
  }

  verifyServer(serverFinal: string): void {
    const verifier = /(?:^|,)v=([^,]+)/.exec(serverFinal)?.[1];
    const expected = this.#serverSignature;
    const got = verifier === undefined ? undefined : Buffer.from(verifier, 'base64');
    if (!expected || !got || got.length !== expected.length || !timingSafeEqual(got, expected)) {
      throw new CheckFailure('the server failed SCRAM verification');
    }
  }
}
