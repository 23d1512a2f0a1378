// Who decides a backend's state in the engine. Two voices set it:
//   - health (active checks, passive ejection): up or down;
//   - the operator (admin API, CLI): enabled, drain, maint.
// The operator's word wins while it is not `enabled`; otherwise health decides.
// A backend with no health check is healthy. This class is the only code that
// calls engine.setBackendState(), so the two voices never overwrite each other.
import { EventEmitter } from 'node:events';
import { backendKey as keyOf } from '../engine/backend-key.js';
import type { Engine } from '../engine/engine.js';
import type { BackendState } from '../engine/stats.js';
import { UnknownBackend } from '../errors.js';

export type HealthVerdict = 'up' | 'down';
/** enabled: health decides. drain: no new connections (sticky clients aside), open ones continue
 * (closed after the service's drain_timeout when it has one). maint: out, open ones continue. */
export type AdminState = 'enabled' | 'drain' | 'maint';

export interface BackendStatus {
  service: string;
  backend: string;
  health: HealthVerdict;
  admin: AdminState;
  /** What the engine runs with. */
  effective: BackendState;
}

/** Emits 'change' (BackendStatus) whenever a backend's effective state changes. */
export class BackendControl extends EventEmitter {
  readonly #engine: Engine;
  readonly #entries = new Map<string, BackendStatus>();

  constructor(engine: Engine) {
    super();
    this.#engine = engine;
  }

  /** Call after engine.apply(config): adopts the backends of `services`, forgets removed ones.
   * `initialHealth` is the verdict of a backend not seen before (down when it must pass a check first). */
  sync<B extends { address: { text: string } }>(
    services: ReadonlyArray<{ name: string; backends: ReadonlyArray<B> }>,
    initialHealth: (service: string, backend: string, config: B) => HealthVerdict = () => 'up',
  ): void {
    const seen = new Set<string>();
    for (const service of services) {
      for (const b of service.backends) {
        const key = keyOf(service.name, b.address.text);
        seen.add(key);
        if (this.#entries.has(key)) {
          this.#push(this.#entries.get(key)!, true);
          continue;
        }
        const entry: BackendStatus = {
          service: service.name,
          backend: b.address.text,
          health: initialHealth(service.name, b.address.text, b),
          admin: 'enabled',
          effective: 'up',
        };
        this.#entries.set(key, entry);
        this.#push(entry, true);
      }
    }
    for (const key of [...this.#entries.keys()]) if (!seen.has(key)) this.#entries.delete(key);
  }

  setHealth(service: string, backend: string, verdict: HealthVerdict): void {
    const entry = this.#get(service, backend);
    entry.health = verdict;
    this.#push(entry, false);
  }

  setAdmin(service: string, backend: string, admin: AdminState): void {
    const entry = this.#get(service, backend);
    entry.admin = admin;
    this.#push(entry, false);
  }

  status(service: string, backend: string): BackendStatus {
    return { ...this.#get(service, backend) };
  }

  list(): BackendStatus[] {
    return [...this.#entries.values()].map((e) => ({ ...e }));
  }

  #get(service: string, backend: string): BackendStatus {
    const entry = this.#entries.get(keyOf(service, backend));
    if (!entry) {
      throw new UnknownBackend(service, backend);
    }
    return entry;
  }

  /** Recompute the effective state and hand it to the engine when it changed (always when `force`). */
  #push(entry: BackendStatus, force: boolean): void {
    const effective: BackendState = entry.admin !== 'enabled' ? entry.admin : entry.health;
    if (!force && effective === entry.effective) return;
    const changed = effective !== entry.effective;
    entry.effective = effective;
    this.#engine.setBackendState(entry.service, entry.backend, effective);
    if (changed) this.emit('change', { ...entry });
  }
}
