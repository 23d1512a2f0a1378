// The control channel of the bench protocol, TypeScript side. The format is
// defined in native/bench/protocol.h (version 1) and documented in
// docs/bench-protocol.md: 8-byte frame header ('F' 'B', version, type,
// u32 big-endian payload length), then the payload.

export const PROTOCOL_VERSION = 1;
export const FRAME_HEADER_SIZE = 8;
export const MAX_FRAME_PAYLOAD = 64 * 1024;

export const FrameType = { hello: 1, session: 2, resultsRequest: 3, results: 4, error: 5 } as const;
export const Role = { control: 1, sink: 2, source: 3, echo: 4, echoOnce: 5 } as const;

export interface Frame {
  type: number;
  payload: Buffer;
}

/** What the server counted for one stream (TCP connection) of a session. */
export interface ServerStreamCount {
  received: number;
  sent: number;
  /** 0 unused, 1 open, 2 done (the server saw the stream end). */
  state: number;
}

/** What the server counted for one UDP flow of a session. */
export interface ServerFlowCount {
  datagrams: number;
  bytes: number;
  reordered: number;
  highestSequence: number;
}

export interface ServerResults {
  streams: ServerStreamCount[];
  flows: ServerFlowCount[];
}

export function encodeFrame(type: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(FRAME_HEADER_SIZE);
  header.write('FB', 0, 'latin1');
  header[2] = PROTOCOL_VERSION;
  header[3] = type;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

export function encodeHello(role: number, session: number, argument: number): Buffer {
  const payload = Buffer.alloc(12);
  payload[0] = role;
  payload.writeUInt32BE(session, 4);
  payload.writeUInt32BE(argument, 8);
  return encodeFrame(FrameType.hello, payload);
}

/**
 * Takes one whole frame off the front of `buffer`: `{ frame, rest }`, or
 * undefined when more bytes are needed. Throws on a header that is not ours.
 */
export function takeFrame(buffer: Buffer): { frame: Frame; rest: Buffer } | undefined {
  if (buffer.length < FRAME_HEADER_SIZE) return undefined;
  if (buffer[0] !== 0x46 || buffer[1] !== 0x42) throw new Error(`bad frame magic 0x${buffer.subarray(0, 2).toString('hex')}`);
  if (buffer[2] !== PROTOCOL_VERSION) throw new Error(`server speaks protocol version ${buffer[2]}, this client ${PROTOCOL_VERSION}`);
  const length = buffer.readUInt32BE(4);
  if (length > MAX_FRAME_PAYLOAD) throw new Error(`frame of ${length} bytes exceeds ${MAX_FRAME_PAYLOAD}`);
  if (buffer.length < FRAME_HEADER_SIZE + length) return undefined;
  const frame = { type: buffer[3]!, payload: buffer.subarray(FRAME_HEADER_SIZE, FRAME_HEADER_SIZE + length) };
  return { frame, rest: buffer.subarray(FRAME_HEADER_SIZE + length) };
}

export function decodeSession(payload: Buffer): { session: number; maxStreams: number; maxFlows: number } {
  if (payload.length !== 12) throw new Error(`SESSION payload of ${payload.length} bytes, expected 12`);
  return { session: payload.readUInt32BE(0), maxStreams: payload.readUInt32BE(4), maxFlows: payload.readUInt32BE(8) };
}

export function decodeError(payload: Buffer): { code: number; message: string } {
  if (payload.length < 2) return { code: 0, message: 'malformed ERROR frame' };
  return { code: payload.readUInt16BE(0), message: payload.subarray(2).toString('utf8') };
}

export function decodeResults(payload: Buffer): ServerResults {
  if (payload.length < 8) throw new Error('RESULTS payload too short');
  const streamCount = payload.readUInt32BE(0);
  const flowCount = payload.readUInt32BE(4);
  if (payload.length !== 8 + streamCount * 24 + flowCount * 32) throw new Error('RESULTS payload length does not match its counts');
  const u64 = (offset: number): number => Number(payload.readBigUInt64BE(offset));
  const streams: ServerStreamCount[] = [];
  for (let i = 0; i < streamCount; i++) {
    const o = 8 + i * 24;
    streams.push({ received: u64(o), sent: u64(o + 8), state: payload[o + 16]! });
  }
  const flows: ServerFlowCount[] = [];
  for (let i = 0; i < flowCount; i++) {
    const o = 8 + streamCount * 24 + i * 32;
    flows.push({ datagrams: u64(o), bytes: u64(o + 8), reordered: u64(o + 16), highestSequence: u64(o + 24) });
  }
  return { streams, flows };
}
