// The running set of backends: the config file's, then those added through
// the admin API, then those DNS gives, per service. The config the engine,
// the health checker and the admin API see is the file's with this set as
// each service's backends. An address appears once: the file's entry wins
// over the API's and DNS's, the API's over DNS's (an address DNS also gives
// is listed in the DNS entry's status, not added twice).
import type { BackendConfig, BackendOrigin, FulcrumConfig } from '../config/types.js';

export interface BackendSources {
  /** Backends added through the admin API, by service. */
  api(service: string): readonly BackendConfig[];
  /** The last good DNS answers' backends, by service. */
  dns(service: string): readonly BackendConfig[];
}

/** `file` with each service's backends completed from `sources`. Pure. */
export function runningConfig(file: FulcrumConfig, sources: BackendSources): FulcrumConfig {
  return {
    ...file,
    services: file.services.map((service) => {
      const seen = new Set<string>();
      const backends: BackendConfig[] = [];
      const add = (list: readonly BackendConfig[]): void => {
        for (const backend of list) {
          if (seen.has(backend.address.text)) continue;
          seen.add(backend.address.text);
          backends.push(backend);
        }
      };
      add(service.backends);
      add(sources.api(service.name));
      add(sources.dns(service.name));
      return { ...service, backends };
    }),
  };
}

/** `file`, `api` or `dns NAME`, as status and logs say it. */
export function originText(origin: BackendOrigin | undefined): string {
  if (origin === undefined || origin.kind === 'file') return 'file';
  return origin.kind === 'api' ? 'api' : `dns ${origin.name}`;
}
