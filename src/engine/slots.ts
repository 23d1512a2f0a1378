// The slots of the running config's services and backends: the engine
// indexes its counters and backend states by slot, so each keeps its slot
// across reloads for as long as it exists (SlotTable). A reload acquires the
// new ones (and can be rolled back), then frees what it removed; a removed
// backend that still has connections keeps its slot (and its connections)
// until they end, as a drained one does: its slot is freed once none is left.
// When its service had a drain_timeout, those still open after it are closed
// and the slot freed then.
import type { FulcrumConfig } from '../config/types.js';
import { backendKey, splitBackendKey } from './backend-key.js';
import { SlotTable } from './slot-table.js';
import type { SnapshotSlots } from './snapshot.js';

/** How often retiring backends are looked at: a slot is freed, and a drain_timeout's close made, at most this late. */
export const RETIRE_POLL_MS = 250;

/** What the slots need from the engine. */
export interface SlotHooks {
  /** Connections a backend slot has open now. */
  activeConnections(backendSlot: number): number;
  /** A removed backend's drain_timeout is over: close the connections it still has. */
  closeConnections(backendSlot: number): void;
  /** A backend slot is free again. */
  freed(backendSlot: number): void;
}

/** A slot handed to a service (`key`: its name) or a backend (backendKey) that had none:
 * its counters may still hold a previous owner's totals. */
export interface FreshSlot {
  kind: 'service' | 'backend';
  key: string;
  slot: number;
}

export interface SlotAssignment {
  slots: SnapshotSlots;
  /** The slots this assignment acquired, in config order. */
  fresh: readonly FreshSlot[];
  /** Give them back (the config was not applied). */
  rollback(): void;
}

export class EngineSlots {
  readonly #services: SlotTable;
  readonly #backends: SlotTable;
  readonly #hooks: SlotHooks;
  /** Removed backends that still had connections, by key: their slot is held until
   * their last connection ends, or until `deadline` (epoch ms; Infinity: none) closes them. */
  readonly #retiring = new Map<string, { slot: number; deadline: number }>();
  /** Looks at the retiring backends every RETIRE_POLL_MS while there are any. */
  #poll: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(capacity: { maxServices: number; maxBackends: number }, hooks: SlotHooks) {
    this.#services = new SlotTable(capacity.maxServices);
    this.#backends = new SlotTable(capacity.maxBackends);
    this.#hooks = hooks;
  }

  /** Slots for every service and backend of `config`, acquiring the ones it adds (in config order). */
  assign(config: Pick<FulcrumConfig, 'services'>): SlotAssignment {
    const fresh: FreshSlot[] = [];
    const acquire = (kind: 'service' | 'backend', key: string): number => {
      const { slot, isNew } = (kind === 'service' ? this.#services : this.#backends).acquire(key);
      if (isNew) fresh.push({ kind, key, slot });
      return slot;
    };
    const rollback = (): void => {
      for (const { kind, key } of fresh) (kind === 'service' ? this.#services : this.#backends).release(key);
    };
    const slots = new Map<string, number>();
    try {
      for (const service of config.services) {
        slots.set(service.name, acquire('service', service.name));
        for (const backend of service.backends) {
          const key = backendKey(service.name, backend.address.text);
          slots.set(key, acquire('backend', key));
        }
      }
    } catch (error) {
      rollback();
      throw error;
    }
    const slotOf = (key: string): number => {
      const slot = slots.get(key);
      if (slot === undefined) throw new Error(`internal: no slot assigned to ${JSON.stringify(key)}`);
      return slot;
    };
    return {
      slots: { service: (name) => slotOf(name), backend: (service, address) => slotOf(backendKey(service, address)) },
      fresh,
      rollback,
    };
  }

  /**
   * After `config` took effect: free the slots of what it no longer has.
   * A removed backend with open connections retires (see #retire) with its
   * service's drain_timeout in `config`, or in `previous` (the config it
   * replaced) when the service is gone too.
   */
  settle(config: Pick<FulcrumConfig, 'services'>, previous: Pick<FulcrumConfig, 'services'> | undefined): void {
    const serviceNames = new Set(config.services.map((s) => s.name));
    const backendKeys = new Set(config.services.flatMap((s) => s.backends.map((b) => backendKey(s.name, b.address.text))));
    for (const name of [...this.#services.keys()]) {
      if (!serviceNames.has(name)) this.#services.release(name);
    }
    for (const key of [...this.#backends.keys()]) {
      if (backendKeys.has(key)) {
        // Back before its retirement ended: it keeps its slot and its open connections.
        this.#retiring.delete(key);
        continue;
      }
      if (this.#retiring.has(key)) continue;
      const slot = this.#backends.get(key)!;
      if (this.#hooks.activeConnections(slot) > 0) {
        // The service's drain_timeout as the new config says (so a reload that removes a backend can
        // also ask for a forced close), or as the config it was removed from said when the service went too.
        const { service } = splitBackendKey(key);
        const owner = config.services.find((s) => s.name === service) ?? previous?.services.find((s) => s.name === service);
        this.#retire(key, slot, owner?.drainTimeoutMs ?? 0);
      } else {
        this.#free(key, slot);
      }
    }
  }

  serviceSlot(name: string): number | undefined {
    return this.#services.get(name);
  }

  backendSlot(service: string, address: string): number | undefined {
    return this.#backends.get(backendKey(service, address));
  }

  /** Slot -> service name, for every service that has one. */
  serviceNames(): Map<number, string> {
    const names = new Map<number, string>();
    for (const name of this.#services.keys()) names.set(this.#services.get(name)!, name);
    return names;
  }

  /** Slot -> backend address, for every backend that has one (retiring ones too). */
  backendAddresses(): Map<number, string> {
    const addresses = new Map<number, string>();
    for (const key of this.#backends.keys()) addresses.set(this.#backends.get(key)!, splitBackendKey(key).address);
    return addresses;
  }

  /** No more retirements end: the engine is stopping and closes everything itself. */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#poll);
    this.#poll = undefined;
    this.#retiring.clear();
  }

  /** A removed backend drains: it takes no new connections (the snapshot no
   * longer has it); its open ones continue until they end, and the slot is
   * freed then. With a `drainTimeoutMs` (not 0), those still open after it
   * are closed and the slot is freed at once. */
  #retire(key: string, slot: number, drainTimeoutMs: number): void {
    this.#retiring.set(key, { slot, deadline: drainTimeoutMs > 0 ? Date.now() + drainTimeoutMs : Infinity });
    if (this.#poll !== undefined) return;
    this.#poll = setInterval(() => this.#checkRetiring(), RETIRE_POLL_MS);
    this.#poll.unref();
  }

  /** JS thread, on the poll timer: free the slots whose connections ended; close those past their deadline. */
  #checkRetiring(): void {
    const now = Date.now();
    for (const [key, { slot, deadline }] of [...this.#retiring]) {
      if (this.#hooks.activeConnections(slot) > 0) {
        if (now < deadline) continue;
        this.#hooks.closeConnections(slot);
      }
      this.#retiring.delete(key);
      this.#free(key, slot);
    }
    if (this.#retiring.size === 0) {
      clearInterval(this.#poll);
      this.#poll = undefined;
    }
  }

  #free(key: string, slot: number): void {
    this.#backends.release(key);
    this.#hooks.freed(slot);
  }
}
