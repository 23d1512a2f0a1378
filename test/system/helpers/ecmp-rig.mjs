// An ECMP rig in network namespaces, shared by test/system/ecmp-*.test.ts and
// bench/failover.mjs: a router (r) running BIRD with ECMP multipath joins two
// segments. On the load-balancer segment (10.201.0.0/24, a bridge in its own
// namespace) sit the Fulcrum nodes n1 and n2, each with its own BIRD, and the
// backends b1 and b2; on the client segment (10.202.0.0/24, a veth pair) the
// client cl, with CLIENT_SOURCES extra addresses to connect from. The VIP
// (10.203.0.100) exists only as the nodes' announcements: the router's route
// to it has one next hop per node that announces it, chosen per flow by an L4
// hash (fib_multipath_hash_policy=1). Namespaces carry the rig's unique prefix
// and destroy() removes them and every process the rig started (by PID).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HaRig, must, run, webServiceConfig } from './ha-rig.mjs';

export const LB_NET = '10.201.0';
export const CLIENT_NET = '10.202.0';
export const ECMP_VIP = '10.203.0.100';
export const ROUTER_AS = 65000;
export const NODE_AS = 65001;
export const ECMP_HOSTS = { n1: 1, n2: 2, b1: 21, b2: 22, x: 30 };
export const ROUTER_LB = `${LB_NET}.254`;
export const ROUTER_CLIENT = `${CLIENT_NET}.254`;
export const CLIENT = `${CLIENT_NET}.10`;
/** Extra client addresses (10.202.0.100 ...), so flows differ in source address too. */
export const CLIENT_SOURCES = Array.from({ length: 16 }, (_, i) => `${CLIENT_NET}.${100 + i}`);

export function lbAddress(host) {
  return `${LB_NET}.${ECMP_HOSTS[host]}`;
}

export class EcmpRig extends HaRig {
  /** Build the router, both segments and every host in ECMP_HOSTS (or `hosts`). */
  static async create(prefix, hosts = Object.keys(ECMP_HOSTS)) {
    const rig = new EcmpRig(prefix);
    try {
      await rig.addSwitch();
      await rig.attach('r', `${ROUTER_LB}/24`);
      for (const host of hosts) {
        await rig.attach(host, `${lbAddress(host)}/24`);
        await must('ip', ['-n', rig.ns(host), 'route', 'add', 'default', 'via', ROUTER_LB]);
      }
      // The client segment: r eth1 <-> cl eth0.
      const r = rig.ns('r');
      const cl = rig.ns('cl');
      await must('ip', ['netns', 'add', cl]);
      rig.namespaces.push(cl);
      await must('ip', ['-n', r, 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', cl]);
      await must('ip', ['-n', r, 'addr', 'add', `${ROUTER_CLIENT}/24`, 'dev', 'eth1']);
      await must('ip', ['-n', r, 'link', 'set', 'eth1', 'up']);
      await must('ip', ['-n', cl, 'addr', 'add', `${CLIENT}/24`, 'dev', 'eth0']);
      for (const source of CLIENT_SOURCES) await must('ip', ['-n', cl, 'addr', 'add', `${source}/24`, 'dev', 'eth0']);
      await must('ip', ['-n', cl, 'link', 'set', 'eth0', 'up']);
      await must('ip', ['-n', cl, 'link', 'set', 'lo', 'up']);
      await must('ip', ['-n', cl, 'route', 'add', 'default', 'via', ROUTER_CLIENT]);
      // Forwarding, and ECMP by the L4 hash (addresses, ports and protocol).
      await must('ip', ['netns', 'exec', r, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      await must('ip', ['netns', 'exec', r, 'sysctl', '-qw', 'net.ipv4.fib_multipath_hash_policy=1']);
    } catch (err) {
      await rig.destroy();
      throw err;
    }
    return rig;
  }

  /** The router's BIRD: a BGP session (with BFD unless `bfd: false`) to each node, routes merged into one multipath kernel route. */
  startRouter(nodes = ['n1', 'n2'], { bfd = true } = {}) {
    const dir = mkdtempSync(join(this.dir, 'bird-r-'));
    const conf = join(dir, 'bird.conf');
    const neighbors = nodes.map((n) => `protocol bgp ${n} from lb { neighbor ${lbAddress(n)} as ${NODE_AS}; }`).join('\n');
    writeFileSync(conf, `router id ${ROUTER_LB};
log stderr all;
protocol device { }
protocol kernel {
  ipv4 { import none; export all; };
  merge paths on;
}
protocol bfd {
  interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };
}
template bgp lb {
  local ${ROUTER_LB} as ${ROUTER_AS};
  bfd ${bfd ? 'on' : 'off'};
  hold time 9;
  connect delay time 1;
  connect retry time 2;
  error wait time 1, 5;
  ipv4 { import all; export none; };
}
${neighbors}
`);
    this.routerSocket = join(dir, 'bird.ctl');
    return this.spawn('r', 'bird', ['-f', '-c', conf, '-s', this.routerSocket, '-P', join(dir, 'bird.pid')]);
  }

  /** The next hops of the router's route to `vip` (empty when it has none). */
  async nextHops(vip = ECMP_VIP) {
    const { stdout } = await run('ip', ['-n', this.ns('r'), '-4', 'route', 'show', `${vip}/32`]);
    return [...stdout.matchAll(/via (\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1]).sort();
  }
}

/** A node's config: a TCP service (web, 8080) and a UDP service (game, 7000) on the VIP, announced through its own BIRD. */
export function ecmpNodeConfig(rig, host, { sync = true, keyFile, bfd = true, withdrawGrace = '300ms', udpBalance = 'roundrobin', extra = '' } = {}) {
  const me = lbAddress(host);
  const peer = lbAddress(host === 'n1' ? 'n2' : 'n1');
  return `${webServiceConfig(ECMP_VIP, [lbAddress('b1'), lbAddress('b2')])}  - name: game
    protocol: udp
    listen: ${ECMP_VIP}:7000
    balance: ${udpBalance}
    timeouts:
      idle: 60s
    backends:
      - address: ${lbAddress('b1')}:7001
      - address: ${lbAddress('b2')}:7001
announce:
  local_address: ${me}
  local_as: ${NODE_AS}
  neighbors:
    - address: ${ROUTER_LB}
      as: ${ROUTER_AS}
  vips: [${ECMP_VIP}]
  bfd: ${bfd}
  withdraw_grace: ${withdrawGrace}
  bird:
    config: ${rig.dir}/bird-${host}.conf
    socket: ${rig.dir}/bird-${host}.ctl
${sync ? `sync:
  listen: ${me}:7480
  peers: [${peer}:7480]
  key_file: ${keyFile}
` : ''}${extra}`;
}

/** A UDP backend in `host` that answers each datagram with "<host>|" and the datagram. */
export function startUdpIdBackend(rig, host, port = 7001) {
  const script = `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send(Buffer.concat([Buffer.from(${JSON.stringify(host)}+'|'),m]),r.port,r.address));s.bind(${port},'0.0.0.0',()=>console.log('ready'))`;
  return rig.spawn(host, process.execPath, ['-e', script]);
}
