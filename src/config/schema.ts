// Structural validation against config/fulcrum.schema.json, the one source of
// truth for the config's keys, types, bounds, enums and defaults (editors read
// the same file; src/config/raw-types.ts is generated from it). Ajv's errors
// are turned into config issues that say what was expected.
//
// Values with a textual format (durations, addresses) are checked by their TS
// parsers, which give sharper messages than a regex can: Ajv's errors from
// those definitions are dropped here and `validate.ts` reports them instead.
// Their bounds are in the schema too, as minDuration / maxDuration: keywords
// Ajv is told about but does not check (the TS parsers read them from
// raw-types.ts).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { ConfigIssue } from '../errors.js';
import { closest, describeValue } from './describe.js';
import type { RawConfig } from './raw-types.js';
import type { YamlSource } from './source.js';

/** Absolute path of the JSON Schema (the same relative place from src/ and dist/). */
export const SCHEMA_FILE = fileURLToPath(new URL('../../config/fulcrum.schema.json', import.meta.url));

/** Definitions whose values validate.ts parses and reports on itself. */
const CHECKED_IN_TS = ['duration', 'durationOrOff', 'listenAddress', 'backendAddress'];

/** What a value of a pattern-checked definition must look like, in words. */
const PATTERN_EXPECTED: Record<string, string> = {
  serviceName: '1 to 64 characters of A-Z a-z 0-9 _ . -',
  httpPath: 'a path that starts with / (printable ASCII, no spaces)',
  httpHost: 'a host name (printable ASCII, no spaces)',
  envName: 'an environment variable name (A-Z a-z 0-9 _, not starting with a digit)',
};

/** Values a later release will accept: the message says "not supported yet" instead of "unknown". */
const NOT_YET_SUPPORTED: Record<string, readonly string[]> = {};

interface SchemaNode {
  title?: string;
  type?: string | string[];
  const?: unknown;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  minItems?: number;
  properties?: Record<string, SchemaNode>;
  anyOf?: SchemaNode[];
  oneOf?: SchemaNode[];
}

let validator: ValidateFunction<RawConfig> | undefined;

/** The schema as parsed JSON. */
export function readConfigSchema(): object {
  return JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as object;
}

/**
 * Compile the schema (once per process). Ajv fills in the schema's defaults
 * while validating (those of if/then branches too, which hold the defaults of
 * protocol: udp), so a valid config comes back complete.
 */
export function configValidator(): ValidateFunction<RawConfig> {
  if (validator === undefined) {
    const ajv = new Ajv({ allErrors: true, verbose: true, useDefaults: true, allowUnionTypes: true, strict: true });
    ajv.addKeyword({ keyword: 'minDuration', schemaType: 'string' });
    ajv.addKeyword({ keyword: 'maxDuration', schemaType: 'string' });
    validator = ajv.compile<RawConfig>(readConfigSchema());
  }
  return validator;
}

export type SchemaResult = { ok: true; config: RawConfig } | { ok: false; issues: ConfigIssue[] };

/**
 * Validate `data` (mutated: defaults are filled in): the typed config, or one
 * issue per problem, positioned through `source`.
 */
export function checkSchema(data: unknown, source: YamlSource): SchemaResult {
  const validate = configValidator();
  if (validate(data)) return { ok: true, config: data };
  return { ok: false, issues: relevantErrors(validate.errors ?? []).map((err) => toIssue(err, source)) };
}

/** Drop errors reported elsewhere and the per-branch noise of anyOf/oneOf (the combinator's own error says it all). */
function relevantErrors(errors: readonly ErrorObject[]): ErrorObject[] {
  const combinators = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  return errors.filter((e) => {
    if (CHECKED_IN_TS.some((name) => e.schemaPath.startsWith(`#/definitions/${name}/`))) return false;
    // if/then branches only fill in defaults: what fails there, the schema's properties report.
    if (e.keyword === 'if' || e.schemaPath.includes('/then/')) return false;
    return !combinators.some(
      (c) => c !== e && e.schemaPath.startsWith(`${c.schemaPath}/`) && e.instancePath.startsWith(c.instancePath),
    );
  });
}

function toIssue(err: ErrorObject, source: YamlSource): ConfigIssue {
  const path = pointerToPath(err.instancePath);
  const schema = (err.parentSchema ?? {}) as SchemaNode;
  const label = pathLabel(path);
  const got = describeValue(err.data);
  switch (err.keyword) {
    case 'additionalProperties': {
      const key = String((err.params as { additionalProperty: string }).additionalProperty);
      const known = Object.keys(schema.properties ?? {});
      const where = path.length === 0 ? 'at the top level' : `in ${schema.title ?? label}`;
      const guess = closest(key, known);
      const hint = guess === undefined ? '' : ` did you mean "${guess}"?`;
      return source.issue([...path, key], `unknown key "${key}" ${where};${hint} expected one of: ${known.join(', ')}`, 'key');
    }
    case 'required': {
      const key = String((err.params as { missingProperty: string }).missingProperty);
      const where = path.length === 0 ? 'at the top level' : `in ${schema.title ?? label}`;
      return source.issue(path, `missing required key "${key}" ${where}`);
    }
    case 'enum': {
      const allowed = (schema.enum ?? []).map(String);
      const expected = allowed.length === 1 ? allowed[0] : `one of: ${allowed.join(', ')}`;
      const field = path.at(-1) ?? label;
      if (typeof err.data === 'string' && NOT_YET_SUPPORTED[field]?.includes(err.data)) {
        return source.issue(path, `${label} ${got} is not supported yet; expected ${expected}`);
      }
      return source.issue(path, `unknown ${label} ${got}; expected ${expected}`);
    }
    case 'minItems': {
      const min = schema.minItems ?? 1;
      return source.issue(path, min <= 1 ? `${label} must not be empty` : `${label} needs at least ${min} entries`);
    }
    case 'pattern': {
      const definition = /^#\/definitions\/([^/]+)\//.exec(err.schemaPath)?.[1];
      const words = (definition && PATTERN_EXPECTED[definition]) ?? `a string matching ${String(err.schema)}`;
      return source.issue(path, `${label}: expected ${words}, got ${got}`);
    }
    case 'type':
    case 'const':
    case 'minimum':
    case 'maximum':
    case 'anyOf':
    case 'oneOf':
      return source.issue(path, `${label}: expected ${describeSchema(schema)}, got ${got}`);
    default:
      return source.issue(path, `${label}: ${err.message ?? 'invalid value'}`);
  }
}

/** What a schema accepts, in words: `an integer from 1 to 256`, `"auto" or ...`. */
function describeSchema(schema: SchemaNode): string {
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives) return alternatives.map(describeSchema).join(' or ');
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return `one of: ${schema.enum.map(String).join(', ')}`;
  const types = Array.isArray(schema.type) ? schema.type : schema.type === undefined ? [] : [schema.type];
  return types.map((type) => describeType(type, schema)).join(' or ') || 'a valid value';
}

function describeType(type: string, schema: SchemaNode): string {
  switch (type) {
    case 'integer':
    case 'number': {
      const noun = type === 'integer' ? 'an integer' : 'a number';
      const { minimum: min, maximum: max } = schema;
      if (min !== undefined && max !== undefined) return `${noun} from ${min} to ${max}`;
      if (min !== undefined) return `${noun} of at least ${min}`;
      if (max !== undefined) return `${noun} of at most ${max}`;
      return noun;
    }
    case 'array':
      return (schema.minItems ?? 0) > 0 ? 'a non-empty list' : 'a list';
    case 'object':
      return 'a mapping';
    case 'string':
      return 'a string';
    case 'boolean':
      return 'true or false';
    default:
      return type;
  }
}

/** `/services/0/name` → ['services', '0', 'name'] (JSON Pointer, RFC 6901). */
function pointerToPath(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/**
 * How a path reads in a message: the keys after the innermost list item
 * (`weight`, `timeouts.connect`, `log.level`), or `services[1]` for an item.
 */
export function pathLabel(path: readonly (string | number)[]): string {
  let lastIndex = -1;
  path.forEach((segment, i) => {
    if (typeof segment === 'number' || /^\d+$/.test(segment)) lastIndex = i;
  });
  if (lastIndex === path.length - 1 && lastIndex >= 0) return `${String(path[lastIndex - 1] ?? '')}[${String(path[lastIndex])}]`;
  if (path.length === 0) return 'config';
  return path.slice(lastIndex + 1).join('.');
}
