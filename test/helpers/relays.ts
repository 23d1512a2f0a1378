// The TCP engine tests run once per relay (relay: user and relay: kernel, see
// native/engine/kernel_relay.h): the same test, the same assertions, the
// service's `relay:` the only difference. In the kernel variant the test also
// checks that the kernel relay really carried its connections, so a silent
// fallback to user space cannot pass as a kernel relay test.
import type { Test } from 'tap';
import type { ServiceStats } from '../../src/engine/stats.js';
import { waitUntil } from './traffic.js';

export const RELAYS = ['user', 'kernel'] as const;
export type TestRelay = (typeof RELAYS)[number];

/** Service keys for `relay` (ServiceOptions.keys). */
export function relayKeys(relay: TestRelay | 'auto'): string[] {
  return [`relay: ${relay}`];
}

/**
 * relay: kernel: at least `atLeast` connections went through the kernel relay,
 * and none stayed in user space for want of it. A connection whose client
 * sent its FIN before the backend was connected cannot enter (CLOSE_WAIT):
 * `closedEarly` of them may be counted that way instead.
 */
export function checkRelayUsed(t: Test, relay: TestRelay, stats: ServiceStats, atLeast = 1, closedEarly = 0): void {
  if (relay !== 'kernel') return;
  const r = stats.relay;
  const entered = r?.kernelEntered ?? 0;
  const early = r?.fallbackNotEstablished ?? 0;
  t.ok(entered >= atLeast - Math.min(early, closedEarly), `the kernel relay carried the connections (${entered} entered, ${early} closed before it could; at least ${atLeast - Math.min(early, closedEarly)})`);
  t.equal((r?.fallbackUnavailable ?? 0) + (r?.fallbackInsertFailed ?? 0) + (r?.fallbackMapFull ?? 0), 0, 'none stayed in user space for want of the kernel relay');
}

/** relay: kernel: waits until `count` connections are in the kernel relay, so
 * what the test sends next crosses it (not the user-space relay before entry). */
export async function untilInKernel(relay: TestRelay, service: () => ServiceStats, count = 1): Promise<void> {
  if (relay !== 'kernel') return;
  await waitUntil(`${count} connection(s) in the kernel relay`, () => (service().relay?.kernelActive ?? 0) >= count, 5_000);
}
