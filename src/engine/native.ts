// Loads the native addon and types its surface. The addon's own contract is
// in native/addon/engine_handle.h; this file is its TypeScript mirror.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import type { Balance, HashKey, Protocol } from '../config/types.js';

export interface NativeBackendSpec {
  slot: number;
  host: string;
  port: number;
  weight: number;
  backup: boolean;
  /** 0: no limit. */
  maxConnections: number;
  slowStartMs: number;
}

export interface NativeServiceSpec {
  slot: number;
  name: string;
  protocol: Protocol;
  /** The listen address is one of ha.virtual_ips: bind it with IP_FREEBIND. */
  freebind: boolean;
  /** protocol: udp: flows at once over every worker (ignored for tcp). */
  maxFlows: number;
  /** protocol: udp: replies that end a flow; 0: only idleness ends it. */
  udpResponses: number;
  listenHost: string;
  listenPort: number;
  balance: Balance;
  hashKey: HashKey;
  maglevTableSize: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  retries: number;
  queueSize: number;
  queueTimeoutMs: number;
  sticky: { size: number; timeoutMs: number } | null;
  /** Share sticky entries and UDP flow assignments with peers (`sync:`); absent: false. */
  sync?: boolean;
  backends: NativeBackendSpec[];
}

export interface NativeSnapshot {
  services: NativeServiceSpec[];
}

export interface NativeEvent {
  type: 'connect_failed' | 'listener_error' | 'accept_paused' | 'accept_resumed';
  worker: number;
  serviceSlot?: number;
  backendSlot?: number;
  code?: string;
}

/** Offsets and strides in u64 words; field maps give the word within a block. */
export interface CounterLayout {
  version: number;
  globalOffset: number;
  firstWorkerOffset: number;
  workerStride: number;
  serviceOffset: number;
  backendOffset: number;
  slotStride: number;
  /** protocol: udp services' and their backends' datagram lines. */
  udpServiceOffset: number;
  udpBackendOffset: number;
  maxServices: number;
  maxBackends: number;
  global: { eventsDropped: number };
  worker: { pooledPipes: number; acceptPauses: number; appliedGeneration: number };
  traffic: {
    accepted: number;
    active: number;
    failed: number;
    bytesIn: number;
    bytesOut: number;
    queued: number;
    refused: number;
    queueTimeouts: number;
  };
  udp: {
    datagramsIn: number;
    datagramsOut: number;
    datagramsDropped: number;
    flowsExpired: number;
    flowsEvicted: number;
    flowsCompleted: number;
    flowsMoved: number;
  };
}

/** Backend states as the addon numbers them. */
export const NativeBackendState = { up: 0, down: 1, drain: 2, maint: 3 } as const;

export interface NativeEngine {
  /** Returns the snapshot's generation; each worker publishes it in its
   * `appliedGeneration` counter once the snapshot is in effect there. */
  apply(snapshot: NativeSnapshot): number;
  setBackendState(slot: number, state: number): void;
  /** Rebuilds the pickers of the backend's service; returns the new generation. */
  setBackendWeight(slot: number, weight: number): number;
  closeBackendConnections(slot: number): void;
  stop(): void;
  readonly counters: ArrayBuffer;
  readonly workers: number;
  /** Session entries recorded since the last call (32-byte records, src/engine/sync-records.ts). */
  takeSync(): { records: ArrayBuffer; dropped: number };
  /** Installs peers' entries (the same records, this node's slots); returns how many took effect. */
  installSync(records: Uint8Array): number;
}

export interface NativeAddon {
  Engine: new (options: { workers: number; onEvents: (events: NativeEvent[]) => void }) => NativeEngine;
  counterLayout: CounterLayout;
  /** rtnetlink address add/del on an interface: 0 or -errno (-EEXIST, -EADDRNOTAVAIL, -ENODEV, -EPERM). */
  setInterfaceAddress(ifname: string, add: boolean, ip: string, prefixLength: number): number;
  testing: {
    /** Backend position per 5-tuple under maglev/five_tuple; tuples are 12-byte
     * records (client IPv4, port, local IPv4, port; network order). */
    maglevAssign(addresses: string[], weights: number[], tableSize: number, tuples: Buffer): Uint32Array;
  };
}

/** The layout version this code reads; the addon must match. */
const SUPPORTED_LAYOUT = 3;

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

let loaded: NativeAddon | undefined;

/**
 * The addon: `FULCRUM_NATIVE` (a path to a .node file, used by the sanitizer
 * builds) or whatever node-gyp-build finds (build/Release, build/Debug,
 * prebuilds/).
 */
export function loadNative(): NativeAddon {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const override = process.env.FULCRUM_NATIVE;
  const addon = (override
    ? require(resolve(override))
    : (require('node-gyp-build') as (dir: string) => unknown)(packageRoot)) as NativeAddon;
  if (addon.counterLayout.version !== SUPPORTED_LAYOUT) {
    throw new Error(
      `native addon counter layout ${addon.counterLayout.version}, expected ${SUPPORTED_LAYOUT}: rebuild with npm run build`,
    );
  }
  loaded = addon;
  return addon;
}
