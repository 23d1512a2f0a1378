// Listeners on a VRRP virtual IP bind before this node holds the address
// (IP_FREEBIND), for TCP and UDP alike; every other listen address must be
// local, so a mistyped one fails with EADDRNOTAVAIL instead of binding
// silently. No traffic is sent: 192.0.2.0/24 (TEST-NET-1) is never on this host.
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { Engine } from '../../src/engine/engine.js';
import { freePort } from '../helpers/backends.js';

const NOT_LOCAL = '192.0.2.77';

function config(protocol: 'tcp' | 'udp', port: number, withHa: boolean) {
  const lines = [
    'workers: 2',
    'log: {level: warn}',
    'services:',
    `  - name: vip-${protocol}`,
    `    protocol: ${protocol}`,
    `    listen: ${NOT_LOCAL}:${port}`,
    '    backends:',
    '      - address: 127.0.0.1:9',
  ];
  if (withHa) lines.push('ha:', '  interface: lo', '  vrid: 51', '  priority: 100', `  virtual_ips: [${NOT_LOCAL}/24]`);
  return parseConfig(`${lines.join('\n')}\n`, 'freebind.yaml');
}

for (const protocol of ['tcp', 'udp'] as const) {
  t.test(`${protocol}: a listen address that is not local and not a virtual IP is refused`, async (t) => {
    const engine = Engine.start({ workers: 2 });
    t.teardown(() => engine.stop());
    const unbound = config(protocol, await freePort(), false);
    t.throws(() => engine.apply(unbound), { code: 'EADDRNOTAVAIL' });
    t.same(engine.stats().services, [], 'nothing was applied');
  });

  t.test(`${protocol}: a virtual IP of the ha: block binds before the node holds it`, async (t) => {
    const engine = Engine.start({ workers: 2 });
    t.teardown(() => engine.stop());
    engine.apply(config(protocol, await freePort(), true));
    await engine.whenApplied();
    t.equal(engine.stats().services[0]?.listen.startsWith(NOT_LOCAL), true, 'the service listens on the virtual IP');
  });
}
