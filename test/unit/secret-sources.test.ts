// What `fulcrum check` reads beyond validation: health-check passwords from
// files and environment variables, at service and backend level, reported at
// the key that names them.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { secretSourceIssues } from '../../src/config/secret-sources.js';
import { YamlSource } from '../../src/config/source.js';
import { formatIssue } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'fulcrum-secrets-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const file = join(dir, 'fulcrum.yaml');
writeFileSync(join(dir, 'ok.password'), 'pw\n');
process.env.FULCRUM_TEST_SECRET_SET = 'pw';
delete process.env.FULCRUM_TEST_SECRET_UNSET;

async function issues(yaml: string): Promise<string[]> {
  return (await secretSourceIssues(new YamlSource(yaml, file), file)).map(formatIssue);
}

t.test('readable sources give nothing; each unreadable one gives one issue at its key', async (t) => {
  const yaml = [
    'services:',
    '  - name: a',
    '    health_check:',
    '      type: redis',
    '      password_file: ok.password',
    '    backends:',
    '      - address: 127.0.0.1:7001',
    '        health_check:',
    '          password_file: missing.password',
    '      - address: 127.0.0.1:7002',
    '        health_check:',
    '          password_env: FULCRUM_TEST_SECRET_UNSET',
    '      - address: 127.0.0.1:7003',
    '        health_check:',
    '          password_env: FULCRUM_TEST_SECRET_SET',
    '      - address: 127.0.0.1:7004',
    '        health_check:',
    `          password_file: ${dir}`,
    '',
  ].join('\n');
  t.same(await issues(yaml), [
    `${file}:9:26: password: cannot read ${join(dir, 'missing.password')} (ENOENT): the check would fail at run time`,
    `${file}:12:25: password: environment variable FULCRUM_TEST_SECRET_UNSET is not set: the check would fail at run time (set it where Fulcrum runs)`,
    `${file}:18:26: password: ${dir} is not a regular file: the check would fail at run time`,
  ]);
});

t.test('a file without read permission', { skip: process.getuid?.() === 0 ? 'root reads any file' : false }, async (t) => {
  writeFileSync(join(dir, 'locked.password'), 'pw\n');
  chmodSync(join(dir, 'locked.password'), 0);
  t.match(await issues('services:\n  - name: a\n    health_check: { type: redis, password_file: locked.password }\n'), [/EACCES/]);
});
