// Fulcrum's version, from package.json (src/ and dist/ are both one level below it).
import { readFileSync } from 'node:fs';

let cached: string | undefined;

export function fulcrumVersion(): string {
  if (cached !== undefined) return cached;
  try {
    const parsed: unknown = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    const value = (parsed as { version?: unknown }).version;
    cached = typeof value === 'string' ? value : 'unknown';
  } catch {
    cached = 'unknown';
  }
  return cached;
}
