// A TCP service's kernel relay (relay:) as operators read it, in `fulcrum
// status`, the status page and /metrics: the mode, connections in the kernel
// now, and those that came back or never went (native/engine/kernel_relay.h).
import type { RelayStats } from '../engine/stats.js';

/** Why connections that asked for the kernel relay stayed in user space: /metrics' reason label and the words. */
export const RELAY_FALLBACKS = [
  { key: 'fallbackUnavailable', reason: 'unavailable', label: 'unavailable', meaning: 'no CAP_BPF/CAP_NET_ADMIN, no sockmap in the kernel, or the program was refused' },
  { key: 'fallbackNotEstablished', reason: 'not_established', label: 'client already closed', meaning: "the client's FIN was already here (CLOSE_WAIT sockets cannot be inserted)" },
  { key: 'fallbackMapFull', reason: 'map_full', label: 'maps full', meaning: 'the maps held as many connections as the connection budget' },
  { key: 'fallbackInsertFailed', reason: 'refused', label: 'refused', meaning: 'the kernel refused the insertion for another reason' },
] as const satisfies ReadonlyArray<{ key: keyof RelayStats; reason: string; label: string; meaning: string }>;

/** Worth a line: relay: kernel, or the kernel relay took a connection, or one stayed out of it. */
export function relayShown(relay: RelayStats | undefined): relay is RelayStats {
  if (relay === undefined) return false;
  return relay.mode === 'kernel' || relay.kernelEntered > 0 || RELAY_FALLBACKS.some((f) => relay[f.key] > 0);
}

/** "relay kernel: 12 in the kernel now, 340 entered, 2 back to splice (bulk); stayed in user space: 0 unavailable, ..." */
export function relayText(relay: RelayStats): string {
  const fallbacks = RELAY_FALLBACKS.map((f) => `${relay[f.key]} ${f.label}`).join(', ');
  return `relay ${relay.mode}: ${relay.kernelActive} in the kernel now, ${relay.kernelEntered} entered, ${relay.kernelBulkExits} back to splice (bulk); stayed in user space: ${fallbacks}`;
}
