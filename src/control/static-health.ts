// The health source used until active checks are configured: every backend is
// up, no check runs. It keeps the HealthSource contract (src/control/types.ts)
// so the runtime, admin API and metrics work the same with or without checks;
// the real checker (src/health/) replaces it in src/runtime.ts.
import type { FulcrumConfig } from '../config/types.js';
import type { HealthVerdict } from './backend-control.js';
import type { BackendHealth, HealthSource } from './types.js';

export class StaticHealth implements HealthSource {
  #config: FulcrumConfig | undefined;

  snapshot(): BackendHealth[] {
    return (this.#config?.services ?? []).flatMap((service) =>
      service.backends.map(
        (backend): BackendHealth => ({
          service: service.name,
          backend: backend.address.text,
          checkType: 'none',
          status: 'up',
          rise: 0,
          fall: 0,
          history: [],
          ejections: 0,
        }),
      ),
    );
  }

  update(config: FulcrumConfig): void {
    this.#config = config;
  }

  initialVerdict(): HealthVerdict {
    return 'up';
  }

  stop(): void {
    this.#config = undefined;
  }
}
