// A check's password, read when the check runs (so a rotated file or a
// changed environment takes effect without a reload). Errors name the source,
// never the secret.
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { PasswordSource } from '../config/health-types.js';
import { CheckFailure } from './conversation.js';

/** The password, undefined when none is configured; throws CheckFailure when its source is unusable. */
export async function readPassword(source: PasswordSource | undefined, configFile: string): Promise<string | undefined> {
  if (source === undefined) return undefined;
  if ('env' in source) {
    const value = process.env[source.env];
    if (value === undefined) throw new CheckFailure(`password: environment variable ${source.env} is not set`);
    return value;
  }
  const path = resolve(dirname(configFile), source.file);
  try {
    const text = await readFile(path, 'utf8');
    return text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text;
  } catch (err) {
    throw new CheckFailure(`password: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}
