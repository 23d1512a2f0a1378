// What the config alone says about a protocol: udp service's datapath
// (README, Kernel UDP datapath): the reasons it cannot run on the kernel
// datapath whatever the host. The engine checks the rest when it starts the
// programs (the interfaces that carry the service, the kernel, capabilities)
// and reports the outcome (engine.udpDatapaths()).
import type { ServiceConfig } from './types.js';

/** Why `service` stays on the user-space relay, or undefined when the kernel path may apply. */
export function kernelDatapathBlocker(service: ServiceConfig): string | undefined {
  if (service.protocol !== 'udp') return 'protocol: tcp';
  if (service.udp.datapath === 'user') return 'datapath: user';
  if (service.listen.family === 6) return 'the listen address is IPv6 (the kernel datapath is IPv4 only)';
  if (service.listen.host === '0.0.0.0') return 'the listen address is a wildcard (the kernel datapath needs the address of one interface)';
  if (service.backends.some((b) => b.address.family === 6)) return 'a backend is IPv6 (the kernel datapath is IPv4 only)';
  if (service.balance !== 'maglev') return 'balance is not maglev (the kernel datapath places flows by Maglev)';
  if (service.source === 'client') return 'source: client is set (the kernel datapath always NATs the source)';
  if (service.acceptProxy !== undefined) return 'accept_proxy is set';
  return undefined;
}

/** How the kernel datapath enforces the service's admission policies (udp_kernel_policy.h), one
 * sentence each, where it differs from the relay; empty without allow/deny, client_limits or udp.responses. */
export function kernelPolicyNotes(service: ServiceConfig): string[] {
  const notes: string[] = [];
  if (service.allow.length > 0 || service.deny.length > 0) {
    notes.push('allow/deny: in BPF (an LPM trie of the IPv4 prefixes), exact; a reload ends the open flows of clients it refuses');
  }
  const limits = service.clientLimits;
  if (limits !== undefined && limits.rate > 0) {
    notes.push(`datagram_rate ${limits.rate}/s, burst ${limits.burst}: in BPF per client address, exact on one CPU; CPUs sharing a client never pass the rate but may each admit one datagram over the burst when it comes back from a quiet spell; ${limits.tableSize} clients tracked (LRU: the least recently seen is forgotten and comes back with a full bucket, never untracked)`);
  }
  if (service.udp.responses !== 0) {
    notes.push(`udp.responses ${service.udp.responses}: in BPF, exact while one CPU handles a flow's replies (two CPUs at the same instant may each deliver one more)`);
  }
  return notes;
}

/** One line for `fulcrum check`: which datapath the service will use. */
export function describeUdpDatapath(service: ServiceConfig): string {
  const blocker = kernelDatapathBlocker(service);
  const head = `  ${service.name} (udp ${service.listen.text}): datapath ${service.udp.datapath}`;
  if (service.udp.datapath === 'user') return `${head}: user-space relay`;
  if (blocker === undefined) {
    const notes = kernelPolicyNotes(service).map((note) => `\n    ${note}`).join('');
    return `${head}: kernel (tcx BPF NAT) if its programs attach at start (Linux >= 6.6, CAP_BPF + CAP_NET_ADMIN, the listen address on an interface), ${service.udp.datapath === 'auto' ? 'otherwise the user-space relay' : 'otherwise the start fails'}${notes}`;
  }
  return service.udp.datapath === 'kernel' ? `${head}: cannot run: ${blocker}` : `${head}: user-space relay (${blocker})`;
}
