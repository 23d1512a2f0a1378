// The slots of the running config's services and backends: the engine
// indexes its counters and backend states by slot, so each keeps its slot
// across reloads for as long as it exists (SlotTable). A reload acquires the
// new ones (and can be rolled back), then frees what it removed; a removed
// backend that still has connections keeps its slot (and its connections)
// for its service's drain_timeout, then they are closed and the slot freed.
import type { FulcrumConfig } from '../config/types.js';
import { backendKey, splitBackendKey } from './backend-key.js';
import { SlotTable } from './slot-table.js';
import type { SnapshotSlots } from './snapshot.js';

/** What the slots need from the engine. */
export interface SlotHooks {
  /** Connections a backend slot has open now. */
  activeConnections(backendSlot: number): number;
  /** A removed backend's drain time is over: close the connections it still has. */
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
  /** Removed backends that still had connections, by key: their slot is held until the close. */
  readonly #retiring = new Map<string, NodeJS.Timeout>();
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
   * `previous` is the config it replaced, whose drain_timeout a removed
   * backend with open connections is given.
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
        clearTimeout(this.#retiring.get(key));
        this.#retiring.delete(key);
        continue;
      }
      if (this.#retiring.has(key)) continue;
      const slot = this.#backends.get(key)!;
      if (this.#hooks.activeConnections(slot) > 0) {
        const { service } = splitBackendKey(key);
        this.#retire(key, slot, previous?.services.find((s) => s.name === service)?.drainTimeoutMs ?? 0);
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
    for (const timer of this.#retiring.values()) clearTimeout(timer);
    this.#retiring.clear();
  }

  /** A removed backend drains: it takes no new connections (the snapshot no
   * longer has it); its open ones may continue for `drainTimeoutMs`, then are
   * closed and the slot is freed. */
  #retire(key: string, slot: number, drainTimeoutMs: number): void {
    const timer = setTimeout(() => {
      this.#retiring.delete(key);
      if (this.#stopped) return;
      this.#hooks.closeConnections(slot);
      this.#free(key, slot);
    }, drainTimeoutMs);
    timer.unref();
    this.#retiring.set(key, timer);
  }

  #free(key: string, slot: number): void {
    this.#backends.release(key);
    this.#hooks.freed(slot);
  }
}
