// The kernel UDP datapath's admission policies (native/engine/udp_kernel_policy.h)
// count in BPF what the relay counts in its workers' counters: a denied
// datagram, one over client_limits' datagram_rate, a flow ended after
// udp.responses replies, a reply past it. Added to the service's own counters
// here, so `fulcrum status`, the status page and /metrics
// (fulcrum_service_refused_clients_total, the udp flow counters) show one
// total whichever datapath served the client.
import type { UdpDatapathStatus } from './native.js';
import type { ServiceStats } from './stats.js';

/** Adds `datapath`'s policy counters to `stats` (the same service's, protocol: udp). */
export function addKernelPolicyCounts(stats: ServiceStats, datapath: UdpDatapathStatus | undefined): ServiceStats {
  if (datapath === undefined || datapath.datapath !== 'kernel') return stats;
  const { denied, overRate, completedFlows, repliesDropped } = datapath.stats;
  stats.admission.denied += denied;
  stats.admission.overRate += overRate;
  if (stats.udp !== undefined) {
    stats.udp.flowsCompleted += completedFlows;
    stats.udp.datagramsDropped += repliesDropped;
  }
  return stats;
}
