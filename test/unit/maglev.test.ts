// Maglev's promises on 100,000 synthetic 5-tuples, through the addon's test
// hook (the data path's own table builder and 5-tuple hash, no sockets):
// removing one of 10 backends moves only the tuples that were on it (plus a
// small measured fraction), tuples spread evenly, and weights are honoured.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { loadNative } from '../../src/engine/native.js';

const { maglevAssign } = loadNative().testing;
const TUPLES = 100_000;
const TABLE = 65537;

/** 12-byte records: client IPv4, client port, local IPv4, local port (network order). */
function randomTuples(count: number): Buffer {
  const tuples = randomBytes(count * 12);
  for (let i = 0; i < count; i++) {
    tuples.writeUInt8(10, i * 12); // clients in 10.0.0.0/8
    tuples.writeUInt32BE(0x0a640001, i * 12 + 6); // one VIP 10.100.0.1
    tuples.writeUInt16BE(5432, i * 12 + 10);
  }
  return tuples;
}

const addresses = Array.from({ length: 10 }, (_, i) => `10.1.0.${i + 1}:5432`);
const tuples = randomTuples(TUPLES);

t.test('removing one of 10 backends moves only its own share', async (t) => {
  const before = maglevAssign(addresses, addresses.map(() => 1), TABLE, tuples);
  const removed = 3;
  const rest = addresses.filter((_, i) => i !== removed);
  const after = maglevAssign(rest, rest.map(() => 1), TABLE, tuples);
  let onRemoved = 0;
  let movedOthers = 0;
  for (let i = 0; i < TUPLES; i++) {
    const now = addresses.indexOf(rest[after[i]!]!);
    if (before[i] === removed) onRemoved++;
    else if (now !== before[i]) movedOthers++;
  }
  const moved = onRemoved + movedOthers;
  t.comment(`tuples on the removed backend: ${onRemoved}; others moved: ${movedOthers} (${((100 * movedOthers) / TUPLES).toFixed(3)}%)`);
  t.ok(movedOthers <= TUPLES * 0.01, 'tuples on the other backends: at most 1% move');
  t.ok(moved <= TUPLES * (0.1 + 0.01), `all moved (${moved}) at most the removed share (10%) + 1 point`);
});

t.test('100,000 tuples spread within 1 point of 10% each', async (t) => {
  const assigned = maglevAssign(addresses, addresses.map(() => 1), TABLE, tuples);
  const counts = new Array<number>(10).fill(0);
  for (const index of assigned) counts[index]!++;
  t.comment(`per backend: ${counts.join(' ')}`);
  for (const [i, count] of counts.entries()) t.ok(Math.abs(count / TUPLES - 0.1) <= 0.01, `${addresses[i]}: ${count}`);
});

t.test('weights 2:1:1 are honoured within 1 point', async (t) => {
  const three = addresses.slice(0, 3);
  const assigned = maglevAssign(three, [2, 1, 1], TABLE, tuples);
  const counts = [0, 0, 0];
  for (const index of assigned) counts[index]!++;
  const shares = counts.map((c) => c / TUPLES);
  t.ok(Math.abs(shares[0]! - 0.5) <= 0.01 && Math.abs(shares[1]! - 0.25) <= 0.01 && Math.abs(shares[2]! - 0.25) <= 0.01, `shares ${shares.map((s) => s.toFixed(3)).join(' ')}`);
});
