// A RESP2 reply parser (Redis serialization protocol), enough for a health
// check: simple strings, errors, integers, bulk strings, arrays.
import { CheckFailure } from '../../errors.js';
import type { ReplyParser } from '../conversation.js';

export type RespValue = string | number | null | RespError | RespValue[];

export class RespError {
  constructor(readonly message: string) {}
}

/** Encode a command as a RESP array of bulk strings. */
export function encodeCommand(...args: string[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = Buffer.from(arg, 'utf8');
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

export const parseReply: ReplyParser<RespValue> = (buffer) => {
  const parsed = parseAt(buffer, 0, 0);
  return parsed && { value: parsed.value, used: parsed.end };
};

const MAX_DEPTH = 8;

function parseAt(buffer: Buffer, start: number, depth: number): { value: RespValue; end: number } | undefined {
  if (depth > MAX_DEPTH) throw new CheckFailure('redis reply nested too deep');
  const lineEnd = buffer.indexOf('\r\n', start);
  if (lineEnd < 0) return undefined;
  const type = String.fromCharCode(buffer[start]!);
  const line = buffer.toString('utf8', start + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: new RespError(line), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const length = Number(line);
      if (length < 0) return { value: null, end: next };
      if (!Number.isInteger(length)) throw new CheckFailure('bad redis bulk length');
      if (buffer.length < next + length + 2) return undefined;
      // A length that disagrees with the data would desynchronise every reply after it.
      if (buffer[next + length] !== 0x0d || buffer[next + length + 1] !== 0x0a) throw new CheckFailure('redis bulk string not followed by CRLF');
      return { value: buffer.toString('utf8', next, next + length), end: next + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, end: next };
      if (!Number.isInteger(count) || count > 1024) throw new CheckFailure('bad redis array length');
      const items: RespValue[] = [];
      let at = next;
      for (let i = 0; i < count; i++) {
        const item = parseAt(buffer, at, depth + 1);
        if (!item) return undefined;
        items.push(item.value);
        at = item.end;
      }
      return { value: items, end: at };
    }
    default:
      throw new CheckFailure(`not a redis reply (starts with ${JSON.stringify(type)})`);
  }
}
