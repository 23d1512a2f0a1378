// What `fulcrum check` verifies beyond validation: the sources a running
// Fulcrum reads only later, at every health check (so a rotated file or a
// changed environment takes effect without a reload), and that would
// otherwise fail only at run time, as a backend that stays down:
// password_file (it must be a readable regular file) and password_env (the
// variable must be set), at service and backend level. Loading a config for
// `run` does not look at them: a secret may appear after the start.
import { readPassword } from '../health/credentials.js';
import { CheckFailure, type ConfigIssue } from '../errors.js';
import type { ConfigPath, YamlSource } from './source.js';

/** One issue per password source that cannot be read now, where the config names it. */
export async function secretSourceIssues(source: YamlSource, configFile: string): Promise<ConfigIssue[]> {
  const data = source.toData() as { services?: unknown } | null;
  const services = Array.isArray(data?.services) ? (data.services as unknown[]) : [];
  const checks: Array<{ at: ConfigPath; check: Record<string, unknown> }> = [];
  services.forEach((service, i) => {
    const s = asRecord(service);
    const own = asRecord(s?.health_check);
    if (own) checks.push({ at: ['services', i, 'health_check'], check: own });
    const backends = Array.isArray(s?.backends) ? (s.backends as unknown[]) : [];
    backends.forEach((backend, j) => {
      const check = asRecord(asRecord(backend)?.health_check);
      if (check) checks.push({ at: ['services', i, 'backends', j, 'health_check'], check });
    });
  });
  const issues: ConfigIssue[] = [];
  for (const { at, check } of checks) {
    if (typeof check.password_env === 'string') {
      const problem = await unreadable({ env: check.password_env }, configFile);
      if (problem) issues.push(source.issue([...at, 'password_env'], `${problem}: the check would fail at run time (set it where Fulcrum runs)`));
    }
    if (typeof check.password_file === 'string') {
      const problem = await unreadable({ file: check.password_file }, configFile);
      if (problem) issues.push(source.issue([...at, 'password_file'], `${problem}: the check would fail at run time`));
    }
  }
  return issues;
}

/** Why the password cannot be read now (the check's own words), or undefined. */
async function unreadable(password: { env: string } | { file: string }, configFile: string): Promise<string | undefined> {
  try {
    await readPassword(password, configFile);
    return undefined;
  } catch (err) {
    if (err instanceof CheckFailure) return err.message;
    throw err;
  }
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}
