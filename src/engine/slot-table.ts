// Stable small integers for services and backends. The native engine indexes
// its counters and backend states by slot, so a service or backend keeps its
// slot across reloads for as long as it exists. Freed slots are reused only
// after every never-used slot has been handed out, which keeps stale counter
// updates from a removed backend's last connections away from a new one.

export class SlotTable {
  readonly #capacity: number;
  readonly #byKey = new Map<string, number>();
  readonly #freed: number[] = [];
  #next = 0;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  get(key: string): number | undefined {
    return this.#byKey.get(key);
  }

  /** The slot for key, allocating one if needed; `isNew` tells which. Throws when full. */
  acquire(key: string): { slot: number; isNew: boolean } {
    const existing = this.#byKey.get(key);
    if (existing !== undefined) return { slot: existing, isNew: false };
    let slot: number | undefined;
    if (this.#next < this.#capacity) slot = this.#next++;
    else slot = this.#freed.shift();
    if (slot === undefined) throw new RangeError(`more than ${this.#capacity} slots in use`);
    this.#byKey.set(key, slot);
    return { slot, isNew: true };
  }

  release(key: string): void {
    const slot = this.#byKey.get(key);
    if (slot === undefined) return;
    this.#byKey.delete(key);
    this.#freed.push(slot);
  }

  keys(): IterableIterator<string> {
    return this.#byKey.keys();
  }
}
