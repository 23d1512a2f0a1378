// Three network namespaces joined by two veth pairs, for benchmarks that must
// not run on loopback (`--netns`): a client namespace, the proxy's namespace
// and a server namespace, so every path crosses real veth devices (their
// softirq, GRO and neighbour work) instead of loopback's shortcut.
//
//   client 10.213.1.2 --veth-- 10.213.1.1 proxy 10.213.2.1 --veth-- 10.213.2.2 server
//
// The proxy namespace forwards (ip_forward=1), so the `direct` path is the
// client talking to the server's address, routed through the proxy namespace
// without NAT: it crosses the same two veth pairs as every proxied path.
// Namespace names carry this process's PID, so two runs do not collide; the
// namespaces (and with them the veth devices) are removed by `close()`, at
// exit and on interrupt. Needs root.

import { execFileSync } from 'node:child_process';
import { onInterrupt } from './proc.mjs';

export const CLIENT_ADDR = '10.213.1.2';
export const PROXY_FRONT_ADDR = '10.213.1.1';
export const PROXY_BACK_ADDR = '10.213.2.1';
export const SERVER_ADDR = '10.213.2.2';

const ip = (args) => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/**
 * Makes the three namespaces. Returns `{ client, proxy, server }` (namespace
 * names, for startProcess/runCommand's `netns` option), the addresses
 * (`clientAddr`, `proxyAddr`: the proxy's listen address, `proxyBackAddr`,
 * `serverAddr`), `describe` (one line for the report) and `close()`
 * (idempotent). Throws with the reason when the machine cannot (not root).
 */
export function openNetns(label) {
  if (process.getuid?.() !== 0) throw new Error('--netns needs root (ip netns, veth)');
  const prefix = `fb-${label}-${process.pid}`;
  const names = { client: `${prefix}-c`, proxy: `${prefix}-p`, server: `${prefix}-s` };
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    for (const name of Object.values(names)) {
      try {
        ip(['netns', 'del', name]);
      } catch {
        // never made, or already gone
      }
    }
  };
  process.on('exit', close);
  onInterrupt(close);
  try {
    for (const name of Object.values(names)) {
      ip(['netns', 'add', name]);
      ip(['-n', name, 'link', 'set', 'lo', 'up']);
    }
    ip(['-n', names.client, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'front', 'netns', names.proxy]);
    ip(['-n', names.server, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'back', 'netns', names.proxy]);
    for (const [ns, dev, cidr] of [
      [names.client, 'eth0', `${CLIENT_ADDR}/24`],
      [names.proxy, 'front', `${PROXY_FRONT_ADDR}/24`],
      [names.proxy, 'back', `${PROXY_BACK_ADDR}/24`],
      [names.server, 'eth0', `${SERVER_ADDR}/24`],
    ]) {
      ip(['-n', ns, 'addr', 'add', cidr, 'dev', dev]);
      ip(['-n', ns, 'link', 'set', dev, 'up']);
    }
    ip(['-n', names.client, 'route', 'add', 'default', 'via', PROXY_FRONT_ADDR]);
    ip(['-n', names.server, 'route', 'add', 'default', 'via', PROXY_BACK_ADDR]);
    // New namespaces do not inherit sysctls: forwarding for the direct path.
    ip(['netns', 'exec', names.proxy, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  } catch (err) {
    close();
    throw new Error(`cannot set up the network namespaces: ${(err.stderr || err.message).toString().trim()}`);
  }
  return {
    ...names,
    clientAddr: CLIENT_ADDR,
    proxyAddr: PROXY_FRONT_ADDR,
    proxyBackAddr: PROXY_BACK_ADDR,
    serverAddr: SERVER_ADDR,
    describe: `client, proxy and server in three network namespaces joined by two veth pairs (${CLIENT_ADDR} → ${PROXY_FRONT_ADDR} | ` +
      `${PROXY_BACK_ADDR} → ${SERVER_ADDR}); direct is routed through the proxy namespace without NAT`,
    close,
  };
}

/**
 * Where things run and which addresses they use: loopback (every host
 * 127.0.0.1, no namespace) or the namespaces of openNetns. `client`,
 * `proxy`, `server`: namespace names or undefined.
 */
export function placement(net) {
  if (!net) return { clientAddr: '127.0.0.1', proxyAddr: '127.0.0.1', serverAddr: '127.0.0.1' };
  return net;
}
