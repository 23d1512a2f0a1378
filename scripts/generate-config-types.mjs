#!/usr/bin/env node
// Writes src/config/raw-types.ts from config/fulcrum.schema.json: the config
// as YAML spells it once the schema accepted it and filled in its defaults,
// and the schema's enums, integer bounds and duration bounds as constants, so
// TypeScript lists none of them a second time.
//
//   node scripts/generate-config-types.mjs          rewrite the file
//   node scripts/generate-config-types.mjs --check  exit 1 when it is stale
//
// Hand-written rather than json-schema-to-typescript: our schema uses a small
// subset (type, enum, const, anyOf, allOf of one $ref, properties, items,
// if/then that only fills defaults), and what we need from it is specific to
// how we validate: Ajv fills in defaults, so a key with a default is never
// absent in what validate.ts builds from (a general generator types it
// optional), and the bounds and enum lists are wanted as values too.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const SCHEMA_FILE = `${ROOT}config/fulcrum.schema.json`;
export const OUTPUT_FILE = `${ROOT}src/config/raw-types.ts`;

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "1h" → 3600000 (the schema's minDuration / maxDuration). */
export function durationMs(text) {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(text);
  if (match === null) throw new Error(`bad duration bound ${JSON.stringify(text)} in the schema`);
  return Number(match[1]) * UNIT_MS[match[2]];
}

/** A TS string literal (single-quoted, as the project writes them). */
const quote = (value) => (typeof value === 'string' ? `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'` : JSON.stringify(value));
const pascal = (key) => key.replace(/(^|_)([a-z])/g, (_m, _u, c) => c.toUpperCase());
const singular = (key) => (key.endsWith('s') ? key.slice(0, -1) : key);

/** The generated module's text for `schema` (parsed JSON). */
export function generateConfigTypes(schema) {
  const definitions = schema.definitions ?? {};
  const interfaces = [];
  const enums = [];
  const bounds = [];
  const durations = [];

  const refName = (ref) => {
    const match = /^#\/definitions\/(.+)$/.exec(ref);
    if (match === null || definitions[match[1]] === undefined) throw new Error(`unsupported $ref ${ref}`);
    return match[1];
  };

  /** The TS type of `node`; `name` is the interface name an object here gets, `path` its key in the constant maps. */
  const typeOf = (node, name, path) => {
    if (node.$ref !== undefined) {
      const target = refName(node.$ref);
      const def = definitions[target];
      return def.type === 'object' ? `Raw${pascal(target)}` : typeOf(def, `Raw${pascal(target)}`, target);
    }
    if (node.const !== undefined) return quote(node.const);
    if (node.enum !== undefined) {
      enums.push([path, node.enum]);
      return node.enum.map(quote).join(' | ');
    }
    if (node.anyOf !== undefined) return node.anyOf.map((n) => typeOf(n, name, path)).join(' | ');
    if (node.allOf !== undefined && node.type === undefined) {
      const refs = node.allOf.filter((n) => n.$ref !== undefined);
      if (refs.length !== 1) throw new Error(`${path}: allOf must hold exactly one $ref`);
      return typeOf(refs[0], name, path);
    }
    const types = Array.isArray(node.type) ? node.type : [node.type];
    return types.map((type) => scalar(type, node, name, path)).join(' | ');
  };

  const scalar = (type, node, name, path) => {
    switch (type) {
      case 'string':
        return 'string';
      case 'boolean':
        return 'boolean';
      case 'integer':
      case 'number':
        return 'number';
      case 'array': {
        const item = typeOf(node.items ?? {}, name, `${path}[]`);
        return /^[\w.]+$/.test(item) ? `${item}[]` : `Array<${item}>`;
      }
      case 'object':
        if (node.properties === undefined) return 'Record<string, unknown>';
        declare(node, name, path);
        return name;
      default:
        throw new Error(`${path}: unsupported type ${String(type)}`);
    }
  };

  /** Collects the integer and duration bounds of one property. */
  const noteBounds = (node, path) => {
    const integer = node.type === 'integer' || (node.anyOf ?? []).some((n) => n.type === 'integer');
    const numeric = node.type === 'integer' ? node : (node.anyOf ?? []).find((n) => n.type === 'integer');
    if (integer && numeric && (numeric.minimum !== undefined || numeric.maximum !== undefined)) {
      bounds.push([path, { minimum: numeric.minimum, maximum: numeric.maximum }]);
    }
    if (node.maxDuration !== undefined || node.minDuration !== undefined) {
      const ref = (node.allOf ?? []).find((n) => n.$ref !== undefined);
      const off = ref !== undefined && refName(ref.$ref) === 'durationOrOff';
      durations.push([
        path,
        {
          minMs: node.minDuration === undefined ? 1 : durationMs(node.minDuration),
          maxMs: durationMs(node.maxDuration),
          ...(off ? { zeroIsOff: true } : {}),
        },
      ]);
    }
  };

  const declared = new Set();
  const declare = (node, name, path) => {
    if (declared.has(name)) return;
    declared.add(name);
    // Outer types first: the slot is taken before the members are walked.
    const slot = interfaces.push('') - 1;
    const required = new Set(node.required ?? []);
    const members = [];
    for (const [key, child] of Object.entries(node.properties)) {
      const childPath = path === '' ? key : `${path}.${key}`;
      noteBounds(child, childPath);
      const childName = child.items !== undefined ? `${name}${pascal(singular(key))}` : `${name}${pascal(key)}`;
      const type = typeOf(child, name === 'RawConfig' ? `Raw${pascal(key)}` : childName, childPath);
      const present = required.has(key) || child.default !== undefined;
      const doc = firstSentence(child.description);
      if (doc) members.push(`  /** ${doc} */`);
      members.push(`  ${/^[a-z_][a-z0-9_]*$/.test(key) ? key : JSON.stringify(key)}${present ? '' : '?'}: ${type};`);
    }
    interfaces[slot] = `export interface ${name} {\n${members.join('\n')}\n}`;
  };

  scalar('object', schema, 'RawConfig', '');
  // Object definitions reached only through $ref get their interfaces too.
  for (const [key, def] of Object.entries(definitions)) {
    if (def.type === 'object') scalar('object', def, `Raw${pascal(key)}`, key);
  }

  const constant = (name, doc, entries, value) =>
    `/** ${doc} */\nexport const ${name} = {\n${entries.map(([path, v]) => `  ${quote(path)}: ${value(v)},`).join('\n')}\n} as const;`;
  const unique = (entries) => [...new Map(entries.map((e) => [e[0], e])).values()].sort((a, b) => a[0].localeCompare(b[0]));

  return [
    '// Generated from config/fulcrum.schema.json by scripts/generate-config-types.mjs: do not edit.',
    '// `npm run generate:config-types` rewrites it; a unit test fails while it is stale.',
    '//',
    '// The config as YAML spells it (snake_case) once the schema accepted it and',
    '// filled in its defaults: a key with a default is always present. Paths in',
    '// the constants are keys from the top level or from a definition (service,',
    '// backend, healthCheck), `[]` for a list item.',
    '',
    ...interfaces.flatMap((text) => [text, '']),
    constant('SCHEMA_ENUMS', 'Every enum of the schema, by path.', unique(enums), (values) => `[${values.map(quote).join(', ')}]`),
    '',
    constant('SCHEMA_BOUNDS', 'The minimum and maximum of every bounded integer of the schema, by path.', unique(bounds), (b) =>
      `{ ${['minimum', 'maximum'].filter((k) => b[k] !== undefined).map((k) => `${k}: ${b[k]}`).join(', ')} }`),
    '',
    '/** A duration\'s bounds in milliseconds; zeroIsOff: 0 is allowed too (below minMs), and turns the feature off. */',
    'export interface DurationBound {',
    '  minMs: number;',
    '  maxMs: number;',
    '  zeroIsOff?: true;',
    '}',
    '',
    constant('DURATION_BOUNDS', "Every duration's bounds (the schema's minDuration / maxDuration), by path.", unique(durations), (b) =>
      `{ ${Object.entries(b).map(([k, v]) => `${k}: ${v}`).join(', ')} }`).replace(/\} as const;$/, '} as const satisfies Record<string, DurationBound>;'),
    '',
    'export type EnumPath = keyof typeof SCHEMA_ENUMS;',
    'export type BoundPath = keyof typeof SCHEMA_BOUNDS;',
    'export type DurationPath = keyof typeof DURATION_BOUNDS;',
    '',
  ].join('\n');
}

/** The description's opening (a sentence ends at a full stop before a capital), for the member's doc comment. */
function firstSentence(text) {
  if (typeof text !== 'string') return '';
  const sentences = text.split('\n')[0].split(/(?<=\.)\s+(?=[A-Z])/);
  // "protocol: tcp only." says little alone.
  const opening = sentences[0].length < 40 && sentences.length > 1 ? `${sentences[0]} ${sentences[1]}` : sentences[0];
  return opening.replace(/\*\//g, '*\\/');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const text = generateConfigTypes(JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')));
  if (process.argv.includes('--check')) {
    if (readFileSync(OUTPUT_FILE, 'utf8') !== text) {
      process.stderr.write(`${OUTPUT_FILE} is stale: run npm run generate:config-types\n`);
      process.exit(1);
    }
  } else {
    writeFileSync(OUTPUT_FILE, text);
  }
}
