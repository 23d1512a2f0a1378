// `fulcrum check` says which datapath each protocol: udp service takes (and
// which relay each TCP one)
// (README, Kernel UDP datapath), and refuses datapath: kernel on a service
// the kernel datapath cannot carry, naming the service and the reason.
import t from 'tap';
import { runCli, writeConfig } from '../helpers/cli.js';

const services = (dnsKeys: string) => `services:
  - name: game
    protocol: udp
    listen: 10.9.9.1:7000
    backends: [{address: "10.9.8.2:9000"}]
  - name: dns
    protocol: udp
    listen: "*:5353"
${dnsKeys}    backends: [{address: "10.9.8.2:53"}]
  - name: voice
    protocol: udp
    listen: 10.9.9.1:7001
    datapath: user
    backends: [{address: "10.9.8.2:9001"}]
  - name: pg
    listen: 127.0.0.1:6432
    backends: [{address: "10.9.8.2:5432"}]
`;

t.test('check lists each UDP service with its datapath', async (t) => {
  const file = writeConfig(t, services(''));
  const r = await runCli(t, ['check', '-c', file]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, `${file}: OK (4 services)
  game (udp 10.9.9.1:7000): datapath auto: kernel (tcx BPF NAT) if its programs attach at start (Linux >= 6.6, CAP_BPF + CAP_NET_ADMIN, the listen address on an interface), otherwise the user-space relay
  dns (udp 0.0.0.0:5353): datapath auto: user-space relay (the listen address is a wildcard (the kernel datapath needs the address of one interface))
  voice (udp 10.9.9.1:7001): datapath user: user-space relay
  pg (tcp 127.0.0.1:6432): relay auto: kernel for request/response, user space for one-shot and bulk
`);
});

t.test('check refuses datapath: kernel where it cannot run', async (t) => {
  const file = writeConfig(t, services('    datapath: kernel\n'));
  const r = await runCli(t, ['check', '-c', file]);
  t.equal(r.code, 2);
  t.equal(r.stderr, `${file}: service dns: datapath: kernel cannot run: the listen address is a wildcard (the kernel datapath needs the address of one interface)\n`);
  t.equal(r.stdout, '');
});

t.test('allow/deny, client_limits and udp.responses keep a service on the kernel datapath; check says how', async (t) => {
  const file = writeConfig(t, `services:
  - name: game
    protocol: udp
    listen: 10.9.9.1:7000
    datapath: kernel
    allow: [10.0.0.0/8]
    deny: [10.1.0.0/16]
    client_limits: {datagram_rate: 100, datagram_burst: 200}
    udp: {responses: 1}
    backends: [{address: "10.9.8.2:9000"}]
`);
  const r = await runCli(t, ['check', '-c', file]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, `${file}: OK (1 service)
  game (udp 10.9.9.1:7000): datapath kernel: kernel (tcx BPF NAT) if its programs attach at start (Linux >= 6.6, CAP_BPF + CAP_NET_ADMIN, the listen address on an interface), otherwise the start fails
    allow/deny: in BPF (an LPM trie of the IPv4 prefixes), exact; a reload ends the open flows of clients it refuses
    datagram_rate 100/s, burst 200: in BPF per client address, exact on one CPU; CPUs sharing a client never pass the rate but may each admit one datagram over the burst when it comes back from a quiet spell; 65536 clients tracked (LRU: the least recently seen is forgotten and comes back with a full bucket, never untracked)
    udp.responses 1: in BPF, exact while one CPU handles a flow's replies (two CPUs at the same instant may each deliver one more)
`);
});
