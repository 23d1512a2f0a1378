// native/engine/flow_hash.h's hash_source() for an IPv4 address, in BigInt
// arithmetic: tests use it to name a client's sticky entry in a sync record.
// test/engine/session-sync.test.ts checks it against the engine.
const M64 = (1n << 64n) - 1n;

function mix64(x) {
  x ^= x >> 30n;
  x = (x * 0xbf58476d1ce4e5b9n) & M64;
  x ^= x >> 27n;
  x = (x * 0x94d049bb133111ebn) & M64;
  return x ^ (x >> 31n);
}

const fold = (h, word) => mix64(h ^ ((word + 0x9e3779b97f4a7c15n) & M64));

/** hash_source() of a dotted-quad IPv4 client address (s_addr read as a little-endian u32). */
export function hashSourceIpv4(ip) {
  const [a, b, c, d] = ip.split('.').map(BigInt);
  return fold(0x5eed0001n, a | (b << 8n) | (c << 16n) | (d << 24n)) || 1n;
}
