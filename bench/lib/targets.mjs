// The paths a request/response benchmark compares, started side by side on
// one machine: straight to the first backend (direct), through the floor
// proxy (bench/tools/floor-proxy.c: recv/send and nothing else), Fulcrum,
// optionally a second Fulcrum checkout (fulcrum-baseline, for a same-run A/B
// of a change), Fulcrum with its connection log on (fulcrum-log: JSON to a
// file; every other Fulcrum path runs with it off), Fulcrum's kernel relay
// (kernel: `relay: kernel`, BPF sockmap; every other Fulcrum path is `relay:
// user`, the recv/send and splice relay), HAProxy and nginx — each
// proxy round robin over the same backends with the same number of threads or
// worker processes. `spike` (asked for by name, with `--spike PATH`) is the
// sockmap spike's own relay (../shared/spikes/sockmap/relay_sockmap, built by
// hand outside the repo), a same-run reference for `kernel`: one thread, one
// backend, loopback only.
//
// With `net` (bench/lib/netns.mjs) the proxies run in the proxy namespace on
// its front address, the backends are the server namespace's, and `direct`
// is the server's address routed through the proxy namespace.

import { fulcrumVersion, haproxyVersion, nginxVersion, startFloorProxy, startFulcrum, startHaproxy, startNginx, startSpikeRelay } from './proxies.mjs';

export const PATHS = ['direct', 'floor', 'fulcrum', 'kernel', 'spike', 'fulcrum-baseline', 'fulcrum-log', 'haproxy', 'nginx'];
export const DEFAULT_PATHS = ['direct', 'floor', 'fulcrum', 'kernel', 'haproxy', 'nginx'];

/**
 * The `--targets`, `--baseline` and `--fulcrum-keys` options every such
 * benchmark takes, for util.parseArgs.
 */
export const PATH_OPTIONS = {
  targets: { type: 'string' },
  baseline: { type: 'string' },
  'fulcrum-keys': { type: 'string', default: '' },
  spike: { type: 'string' },
};

/** The paths asked for (`--targets`, default: DEFAULT_PATHS plus fulcrum-baseline when `--baseline` is given). */
export function pathsArg(values, targetsArg) {
  const targets = targetsArg(values.targets ?? [...DEFAULT_PATHS, ...(values.baseline ? ['fulcrum-baseline'] : [])].join(','), PATHS);
  if (targets.includes('fulcrum-baseline') && !values.baseline) throw new Error('--targets fulcrum-baseline needs --baseline DIR');
  if (targets.includes('spike') && !values.spike) throw new Error('--targets spike needs --spike PATH (the sockmap spike\'s relay_sockmap binary)');
  return {
    targets,
    baseline: values.baseline,
    spike: values.spike,
    fulcrumKeys: values['fulcrum-keys'].split(';').map((s) => s.trim()).filter(Boolean),
  };
}

/** Version lines for the report: `[label, value]` pairs. */
export function pathVersions(opt) {
  const lines = [['haproxy', haproxyVersion() ?? 'not installed'], ['nginx', nginxVersion() ?? 'not installed'], ['fulcrum', fulcrumVersion()]];
  if (opt.baseline) lines.push(['baseline', `${opt.baseline}: ${fulcrumVersion(opt.baseline)}`]);
  return lines;
}

/**
 * Starts every path in `opt.targets` in front of `backends` (ports on
 * 127.0.0.1, or on the server namespace's address with `net`), each proxy on
 * its port from `ports` (one per PATHS entry) and its files in `dir`.
 * Resolves `{ running: Map name -> { port, host, handle }, skipped: Map name
 * -> reason }` (`host`: the address a client connects to); a path that
 * cannot start is skipped.
 */
export async function startPaths({ opt, dir, ports, backends, threads, log, net }) {
  const listen = (name) => ports[PATHS.indexOf(name)];
  // In namespaces: where the proxies listen, where the backends are, the proxies' namespace.
  const where = net ? { host: net.proxyAddr, backendHost: net.serverAddr, netns: net.proxy } : {};
  // relay: user unless named: a baseline checkout may not know the key.
  const fulcrum = (name, root, globalKeys, connectionLog = undefined, relay = root ? undefined : 'user') => async () =>
    (await startFulcrum({ dir, listenPort: listen(name), backends, workers: threads, root, globalKeys, file: `${name}.yaml`, connectionLog, serviceKeys: relay ? [`relay: ${relay}`] : [], ...where })).handle;
  const starters = {
    direct: async () => null,
    floor: () => startFloorProxy(listen('floor'), backends, threads, where),
    spike: async () => {
      if (net) throw new Error('the spike relay binds 127.0.0.1 only: loopback runs only');
      return startSpikeRelay(opt.spike, listen('spike'), backends);
    },
    fulcrum: fulcrum('fulcrum', undefined, opt.fulcrumKeys),
    kernel: fulcrum('kernel', undefined, opt.fulcrumKeys, undefined, 'kernel'),
    'fulcrum-baseline': fulcrum('fulcrum-baseline', opt.baseline, []),
    'fulcrum-log': fulcrum('fulcrum-log', undefined, opt.fulcrumKeys, `${dir}/connections.log`),
    haproxy: async () => (await startHaproxy({ dir, listenPort: listen('haproxy'), backends, threads, ...where })).handle,
    nginx: async () => (await startNginx({ dir, tcpPort: listen('nginx'), backends, workers: threads, ...where })).handle,
  };
  const running = new Map();
  const skipped = new Map();
  for (const name of opt.targets) {
    try {
      const handle = await starters[name]();
      const host = net ? (name === 'direct' ? net.serverAddr : net.proxyAddr) : '127.0.0.1';
      running.set(name, { port: name === 'direct' ? backends[0] : listen(name), host, handle });
    } catch (err) {
      skipped.set(name, err.message.split('\n')[0]);
      log(`${name}: SKIPPED, ${err.message}`);
    }
  }
  return { running, skipped };
}
