// A check's password, read when the check runs (so a rotated file or a
// changed environment takes effect without a reload). Errors name the source,
// never the secret.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { PasswordSource } from '../config/health-types.js';
import { CheckFailure } from '../errors.js';

const MAX_PASSWORD_FILE = 4096;

/** The password, undefined when none is configured; throws CheckFailure when its source is unusable. */
export async function readPassword(source: PasswordSource | undefined, configFile: string): Promise<string | undefined> {
  if (source === undefined) return undefined;
  if ('env' in source) {
    const value = process.env[source.env];
    if (value === undefined) throw new CheckFailure(`password: environment variable ${source.env} is not set`);
    return value;
  }
  const path = resolve(dirname(configFile), source.file);
  let text: string;
  try {
    // O_NONBLOCK and a regular-file check: a FIFO or device named by mistake must not hang the check.
    const file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const info = await file.stat();
      if (!info.isFile()) throw new CheckFailure(`password: ${path} is not a regular file`);
      if (info.size > MAX_PASSWORD_FILE) throw new CheckFailure(`password: ${path} is larger than ${MAX_PASSWORD_FILE} bytes`);
      text = await file.readFile('utf8');
    } finally {
      await file.close();
    }
  } catch (err) {
    if (err instanceof CheckFailure) throw err;
    throw new CheckFailure(`password: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text;
}
