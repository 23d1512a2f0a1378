// src/config/raw-types.ts is generated from the JSON Schema
// (scripts/generate-config-types.mjs): the committed file must be what the
// generator makes of the schema now, so a schema change without
// `npm run generate:config-types` fails here instead of typing the config
// wrongly.
import t from 'tap';
import { readFileSync } from 'node:fs';
// @ts-expect-error: a plain .mjs script without type declarations
import { generateConfigTypes, OUTPUT_FILE, SCHEMA_FILE } from '../../scripts/generate-config-types.mjs';

t.test('the committed raw-types.ts is what the generator makes of the schema', async (t) => {
  const fresh = (generateConfigTypes as (schema: unknown) => string)(JSON.parse(readFileSync(SCHEMA_FILE as string, 'utf8')));
  t.equal(readFileSync(OUTPUT_FILE as string, 'utf8'), fresh, 'run npm run generate:config-types after changing the schema');
});

t.test('keys with a default are always present; bounds and enums are the schema\'s', async (t) => {
  const generate = generateConfigTypes as (schema: unknown) => string;
  const text = generate({
    type: 'object',
    required: ['name'],
    properties: {
      name: { type: 'string', description: 'The name.' },
      size: { type: 'integer', minimum: 1, maximum: 9, default: 3, description: 'How many.' },
      mode: { enum: ['a', 'b'], description: 'Which.' },
      wait: { maxDuration: '1h', allOf: [{ $ref: '#/definitions/duration' }], description: 'How long.' },
    },
    definitions: { duration: { type: ['string', 'integer'] } },
  });
  t.match(text, /export interface RawConfig \{\n {2}\/\*\* The name\. \*\/\n {2}name: string;\n {2}\/\*\* How many\. \*\/\n {2}size: number;\n {2}\/\*\* Which\. \*\/\n {2}mode\?: 'a' \| 'b';\n {2}\/\*\* How long\. \*\/\n {2}wait\?: string \| number;\n\}/);
  t.match(text, /'mode': \['a', 'b'\],/);
  t.match(text, /'size': \{ minimum: 1, maximum: 9 \},/);
  t.match(text, /'wait': \{ minMs: 1, maxMs: 3600000 \},/);
});
