// Properties of reading BIRD's control output (src/announce/birdc.ts), with
// fast-check: parseProtocols never throws on any text and returns only rows
// with single-word name, proto and state; a `show protocols` table as BIRD
// prints it (any column widths, a one- or two-token Since column, an Info
// column or none, the header, blank and foreign lines mixed in) parses back
// to its rows; and birdc() run against a stand-in program returns the output
// without the greeting, or on a non-zero exit one line saying why.
import fc from 'fast-check';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { birdc, parseProtocols, type ProtocolRow } from '../../src/announce/birdc.js';

const RUNS = 300;
const word = fc.stringMatching(/^[A-Za-z0-9_.\-/]{1,16}$/);
const name = fc.stringMatching(/^[a-z][a-z0-9_]{0,24}$/);
const since = fc.constantFrom('07:24:41.518', '2024-05-01 07:24:45', '2024-05-01', '12:00:00');
// Info never starts with a time: a two-token Since column spills its time into Info, and that is how the parser tells.
const info = fc.array(word.filter((w) => !/^\d\d:\d\d/.test(w)), { maxLength: 4 }).map((words) => words.join(' '));
const rowArb = fc.record({ name, proto: fc.constantFrom('Device', 'Static', 'BGP', 'Direct', 'Kernel'), table: fc.constantFrom('---', 'master4', 'master6'), state: fc.constantFrom('up', 'down', 'start', 'stop'), since, info });
const pad = fc.integer({ min: 1, max: 6 }).map((n) => ' '.repeat(n));

t.test('any text: no throw; every row has single-word name, proto and state', async (t) => {
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.array(fc.array(fc.oneof(word, fc.constantFrom(' ', '  ', '\t', '\n', 'Name ')), { maxLength: 10 }).map((p) => p.join('')), { maxLength: 8 }).map((l) => l.join('\n'))), (text) => {
      return parseProtocols(text).every((r) => [r.name, r.proto, r.state].every((f) => /^\S+$/.test(f)) && r.info === r.info.trim());
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} texts`);
});

t.test('a show protocols table parses back to its rows', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.tuple(rowArb, fc.array(pad, { minLength: 5, maxLength: 5 })), { maxLength: 8 }), fc.boolean(), fc.constantFrom('', '\n', '\n\n1002-Foreign line\n'), (rows, header, extra) => {
      const lines = rows.map(([r, gaps]) => [r.name, gaps[0], r.proto, gaps[1], r.table, gaps[2], r.state, gaps[3], r.since, r.info ? gaps[4] + r.info : ''].join(''));
      const text = (header ? 'Name       Proto      Table      State  Since         Info\n' : '') + lines.join('\n') + extra;
      const parsed = parseProtocols(text).filter((p) => p.name !== '1002-Foreign');
      const want: ProtocolRow[] = rows.map(([r]) => ({ name: r.name, proto: r.proto, state: r.state, info: r.info }));
      return JSON.stringify(parsed) === JSON.stringify(want);
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} tables`);
});

t.test('birdc(): output without the greeting; a failure is one line', async (t) => {
  const dir = t.testdir();
  // A stand-in for birdc: prints the file named by -s, then exits with the code in FILE.code.
  const program = join(dir, 'birdc');
  writeFileSync(program, '#!/bin/sh\ncat "$2"\nexit "$(cat "$2.code")"\n');
  chmodSync(program, 0o755);
  const out = join(dir, 'out');
  const textArb = fc.array(fc.oneof(word, fc.constantFrom(' ', '\n', '\r\n', '\t')), { maxLength: 30 }).map((p) => p.join(''));
  await fc.assert(
    fc.asyncProperty(fc.boolean(), textArb, fc.constantFrom(0, 0, 1, 3), async (greet, body, code) => {
      writeFileSync(out, (greet ? 'BIRD 2.0.12 ready.\n' : '') + body);
      writeFileSync(`${out}.code`, String(code));
      const result = await birdc(program, out, ['show', 'protocols'], 2000);
      if (code === 0) return result.ok && result.output === body.trim();
      return !result.ok && !result.output.includes('\n');
    }),
    { numRuns: 40 },
  );
  t.pass('40 runs of a stand-in birdc');
});
