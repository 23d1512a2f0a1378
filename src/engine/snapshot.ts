// The native snapshot of a validated config: what engine.apply() hands the
// addon (NativeSnapshot, read by native/addon/snapshot_reader.cc). A pure
// function: the slots come from the caller, nothing is read or opened here.
import type { FulcrumConfig, ServiceConfig } from '../config/types.js';
import type { NativeBackendSpec, NativeServiceSpec, NativeSnapshot } from './native.js';

/** The slot of each service and backend of the config (see slots.ts). */
export interface SnapshotSlots {
  service(name: string): number;
  backend(service: string, address: string): number;
}

export type SnapshotConfig = Pick<FulcrumConfig, 'services' | 'ha' | 'announce' | 'sync'>;

/** Every service of `config`, in order, as the addon takes it. */
export function snapshot(config: SnapshotConfig, slots: SnapshotSlots): NativeSnapshot {
  // Listeners on a VIP bind before this node holds it (IP_FREEBIND): VRRP's, and the announced ones.
  const virtualIps = new Set([...(config.ha?.virtualIps.map((vip) => vip.address) ?? []), ...(config.announce?.vips ?? [])]);
  const sync = config.sync !== undefined;
  return { services: config.services.map((service) => serviceSpec(service, slots, virtualIps.has(service.listen.host), sync)) };
}

/**
 * Whether a service sends PostgreSQL cancel requests on to all its backends:
 * `broadcast`, or `auto` when its backends are checked as PostgreSQL servers
 * (the service's health_check, or a backend's own, of type postgres). A udp
 * service never (the config refuses the key there).
 */
export function postgresCancelOn(service: Pick<ServiceConfig, 'protocol' | 'postgresCancel' | 'backends'>): boolean {
  if (service.protocol !== 'tcp' || service.postgresCancel === 'off') return false;
  return service.postgresCancel === 'broadcast' || service.backends.some((backend) => backend.healthCheck?.type === 'postgres');
}

function serviceSpec(service: ServiceConfig, slots: SnapshotSlots, freebind: boolean, sync: boolean): NativeServiceSpec {
  return {
    slot: slots.service(service.name),
    name: service.name,
    protocol: service.protocol,
    freebind,
    ipv6Only: service.ipv6Only,
    maxFlows: service.udp.maxFlows,
    udpResponses: service.udp.responses,
    datapath: service.udp.datapath,
    natPortFirst: service.udp.natPorts.first,
    natPortCount: service.udp.natPorts.count,
    listenHost: service.listen.host,
    listenPort: service.listen.port,
    balance: service.balance,
    hashKey: service.hashKey,
    maglevTableSize: service.maglevTableSize,
    connectTimeoutMs: service.timeouts.connectMs,
    idleTimeoutMs: service.timeouts.idleMs,
    tcpKeepalive: service.tcpKeepalive ?? null,
    retries: service.retries,
    queueSize: service.queue.size,
    queueTimeoutMs: service.queue.timeoutMs,
    sticky: service.sticky ? { size: service.sticky.size, timeoutMs: service.sticky.timeoutMs } : null,
    acceptProxy: service.acceptProxy ? { from: service.acceptProxy.from ?? null, timeoutMs: service.acceptProxy.timeoutMs } : null,
    allow: service.allow,
    deny: service.deny,
    clientLimits: service.clientLimits ?? null,
    transparent: service.source === 'client',
    sync,
    pgCancel: postgresCancelOn(service),
    relay: service.relay,
    backends: service.backends.map(
      (backend): NativeBackendSpec => ({
        slot: slots.backend(service.name, backend.address.text),
        host: backend.address.host,
        port: backend.address.port,
        weight: backend.weight,
        backup: backend.backup,
        maxConnections: backend.maxConnections,
        slowStartMs: backend.slowStartMs,
        sendProxy: backend.sendProxy,
      }),
    ),
  };
}
