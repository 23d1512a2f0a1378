// The config schema and the addon agree: every enum the snapshot carries has
// the same names in native/ (the tables the snapshot reader parses with, as
// addon.snapshotSchema exports them) as in config/fulcrum.schema.json, and
// every number the reader bounds has the schema's minimum and maximum for the
// key it comes from. A value the config accepts is never refused by the
// engine, and the engine never accepts what the config refuses.
import t from 'tap';
import {
  DURATION_BOUNDS,
  SCHEMA_BOUNDS,
  SCHEMA_ENUMS,
  type BoundPath,
  type DurationBound,
  type DurationPath,
  type EnumPath,
} from '../../src/config/raw-types.js';
import { loadNative, type NativeBound, type SnapshotSchema } from '../../src/engine/native.js';

/** Where each snapshot enum comes from in the config. */
const ENUM_SOURCES: Record<keyof SnapshotSchema['enums'], EnumPath[]> = {
  balance: ['service.balance'],
  hashKey: ['service.hash_key'],
  datapath: ['service.datapath'],
  protocol: ['service.protocol'],
  sendProxy: ['service.send_proxy', 'backend.send_proxy'],
};

/**
 * Where each bounded snapshot number comes from: an integer key (`absentIsOff`:
 * the key may be left out, and the snapshot carries 0 for it) or a duration.
 */
type Source = { integer: BoundPath; absentIsOff?: true } | { duration: DurationPath };
const BOUND_SOURCES: Record<string, Source[]> = {
  'service.maglevTableSize': [{ integer: 'service.maglev_table_size' }],
  'service.connectTimeoutMs': [{ duration: 'service.timeouts.connect' }],
  'service.idleTimeoutMs': [{ duration: 'service.timeouts.idle' }],
  'service.retries': [{ integer: 'service.retries' }],
  'service.queueSize': [{ integer: 'service.queue.size' }],
  'service.queueTimeoutMs': [{ duration: 'service.queue.timeout' }, { duration: 'service.timeouts.connect' }],
  'service.maxFlows': [{ integer: 'service.max_flows' }],
  'service.udpResponses': [{ integer: 'service.udp.responses' }],
  'tcpKeepalive.idleMs': [{ duration: 'service.tcp_keepalive.idle' }],
  'tcpKeepalive.intervalMs': [{ duration: 'service.tcp_keepalive.interval' }],
  'tcpKeepalive.count': [{ integer: 'service.tcp_keepalive.count' }],
  'acceptProxy.timeoutMs': [{ duration: 'service.accept_proxy_timeout' }],
  'sticky.size': [{ integer: 'service.sticky.size' }],
  'sticky.timeoutMs': [{ duration: 'service.sticky.timeout' }],
  'clientLimits.maxConnections': [{ integer: 'service.client_limits.max_connections', absentIsOff: true }],
  'clientLimits.rate': [
    { integer: 'service.client_limits.connection_rate', absentIsOff: true },
    { integer: 'service.client_limits.datagram_rate', absentIsOff: true },
  ],
  'clientLimits.burst': [
    { integer: 'service.client_limits.connection_burst', absentIsOff: true },
    { integer: 'service.client_limits.datagram_burst', absentIsOff: true },
  ],
  'clientLimits.tableSize': [{ integer: 'service.client_limits.table_size' }],
  'backend.weight': [{ integer: 'backend.weight' }],
  'backend.maxConnections': [{ integer: 'backend.max_connections', absentIsOff: true }],
  'backend.slowStartMs': [{ duration: 'backend.slow_start' }, { duration: 'service.slow_start' }],
};

/** What the schema accepts for `source`, in the addon's terms. */
function expected(source: Source): NativeBound {
  if ('duration' in source) {
    const bound: DurationBound = DURATION_BOUNDS[source.duration];
    return { min: bound.minMs, max: bound.maxMs, zeroIsOff: bound.zeroIsOff === true };
  }
  const bound: { minimum?: number; maximum?: number } = SCHEMA_BOUNDS[source.integer];
  return { min: bound.minimum ?? Number.NaN, max: bound.maximum ?? Number.NaN, zeroIsOff: source.absentIsOff === true };
}

t.test('every enum of the snapshot has the schema\'s names', async (t) => {
  const { enums } = loadNative().snapshotSchema;
  t.strictSame(Object.keys(enums).sort(), Object.keys(ENUM_SOURCES).sort(), 'the addon exports these enums');
  for (const [name, paths] of Object.entries(ENUM_SOURCES)) {
    for (const path of paths) {
      t.strictSame([...enums[name as keyof SnapshotSchema['enums']]].sort(), [...SCHEMA_ENUMS[path]].sort(), `${name} = ${path}`);
    }
  }
});

t.test('every bounded number of the snapshot has the schema\'s bounds', async (t) => {
  const { bounds } = loadNative().snapshotSchema;
  const exported = Object.entries(bounds).flatMap(([scope, keys]) => Object.keys(keys).map((key) => `${scope}.${key}`));
  t.strictSame(exported.sort(), Object.keys(BOUND_SOURCES).sort(), 'each exported bound has its config key here');
  for (const [field, sources] of Object.entries(BOUND_SOURCES)) {
    const [scope, key] = field.split('.') as [string, string];
    for (const source of sources) {
      t.strictSame(bounds[scope]?.[key], expected(source), `${field} = ${'duration' in source ? source.duration : source.integer}`);
    }
  }
});

t.test('maglev_table_size is the user-facing range in both', async (t) => {
  t.strictSame(loadNative().snapshotSchema.bounds.service?.maglevTableSize, { min: 251, max: 4_194_301, zeroIsOff: false });
  t.strictSame(SCHEMA_BOUNDS['service.maglev_table_size'], { minimum: 251, maximum: 4_194_301 });
});
