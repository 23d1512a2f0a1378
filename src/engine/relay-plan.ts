// Which relay each TCP service uses (relay: auto | user | kernel, see
// native/engine/kernel_relay.h), as `fulcrum check` and the start-up log say
// it: decided from the service's setting and whether this process can use the
// kernel relay at all (probed once by the addon). Per connection the engine
// may still fall back (counted in /metrics); this is the plan.
import type { ServiceConfig } from '../config/types.js';
import { loadNative } from './native.js';

export interface KernelRelaySupport {
  available: boolean;
  /** Why not, for the operator ("" when available). */
  reason: string;
}

export function kernelRelaySupport(): KernelRelaySupport {
  return loadNative().kernelRelaySupport();
}

/** "kernel", "auto: kernel for request/response, splice for bulk", "user (kernel relay unavailable)", ... */
export function relayInUse(service: Pick<ServiceConfig, 'protocol' | 'relay'>, support: KernelRelaySupport): string | undefined {
  if (service.protocol !== 'tcp') return undefined;
  if (service.relay === 'user') return 'user';
  if (!support.available) return `user (relay: ${service.relay}, but the kernel relay is unavailable)`;
  return service.relay === 'kernel' ? 'kernel' : 'auto: kernel for request/response, user space for one-shot and bulk';
}

/** One warning for every service that asked for the kernel relay where it cannot be had, or undefined. */
export function kernelRelayUnavailableNotice(services: readonly Pick<ServiceConfig, 'name' | 'protocol' | 'relay'>[], support: KernelRelaySupport): string | undefined {
  if (support.available) return undefined;
  const wanting = services.filter((s) => s.protocol === 'tcp' && s.relay !== 'user').map((s) => s.name);
  if (wanting.length === 0) return undefined;
  return `kernel relay unavailable (${support.reason}): ${wanting.join(', ')} relay in user space; set relay: user to silence this`;
}
