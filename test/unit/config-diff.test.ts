// What a reload changed, named by YAML key: the `reloaded` log line and
// `fulcrum reload` say `changed redis: balance, backends (+1 -0)`, not only
// `changed redis`.
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { describeChanges, diffConfigs } from '../../src/control/config-diff.js';

const BEFORE = `
drain_timeout: 30s
services:
  - name: redis
    listen: 127.0.0.1:6380
    balance: roundrobin
    timeouts: { idle: 10m }
    backends: [{ address: 127.0.0.1:7001 }, { address: 127.0.0.1:7002 }]
  - name: pg
    listen: 127.0.0.1:6432
    backends: [{ address: 127.0.0.1:7101 }]
`;

t.test('each kept service lists the keys that changed and its backends added, removed, changed', async (t) => {
  const before = parseConfig(BEFORE, 'a.yaml');
  const after = parseConfig(
    BEFORE.replace('balance: roundrobin', 'balance: leastconn')
      .replace('idle: 10m', 'idle: 1h')
      .replace('{ address: 127.0.0.1:7002 }]', '{ address: 127.0.0.1:7002, weight: 3 }, { address: 127.0.0.1:7003 }]')
      .replace('{ address: 127.0.0.1:7101 }]', '{ address: 127.0.0.1:7102 }]'),
    'a.yaml',
  );
  const diff = diffConfigs(before, after);
  t.same(diff.details, {
    redis: ['balance', 'timeouts.idle', 'backends (+1 -0 ~1)'],
    pg: ['backends (+1 -1)'],
  });
  t.same(diff.changed, ['redis', 'redis/127.0.0.1:7002'], 'the names as before for API clients');
  t.equal(describeChanges(diff), 'changed redis: balance, timeouts.idle, backends (+1 -0 ~1); changed pg: backends (+1 -1)');
});

t.test('added and removed services, top-level settings, and nothing at all', async (t) => {
  const before = parseConfig(BEFORE, 'a.yaml');
  const after = parseConfig(BEFORE.replace('drain_timeout: 30s', 'drain_timeout: 1m').replace(/ {2}- name: pg[^]*$/, '  - name: cache\n    listen: 127.0.0.1:6390\n    backends: [{ address: 127.0.0.1:7201 }]\n'), 'a.yaml');
  const diff = diffConfigs(before, after);
  // The top-level drain_timeout is for SIGTERM only: a service's own (default 0) does not follow it.
  t.equal(describeChanges(diff), 'added cache; removed pg; changed drain_timeout');
  t.equal(describeChanges(diffConfigs(before, parseConfig(BEFORE, 'a.yaml'))), 'nothing changed');
});
