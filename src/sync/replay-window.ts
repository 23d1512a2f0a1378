// Replay protection for session-sync messages, per sender address: a message
// is taken once. A sender's incarnation (its start time) may only grow; within
// one, sequences are accepted once each inside a sliding window of the last
// WINDOW numbers (IPsec's anti-replay window, RFC 4303 3.4.3), so reordering
// on the wire is tolerated and a copy is not.
export const WINDOW = 64n;
const MASK = (1n << WINDOW) - 1n;

interface SenderState {
  incarnation: bigint;
  highest: bigint;
  /** Bit i: sequence highest - i was seen. */
  seen: bigint;
}

export class ReplayWindow {
  readonly #senders = new Map<string, SenderState>();

  /** True (and remembered) when this (incarnation, sequence) from `sender` was not seen before. */
  accept(sender: string, incarnation: bigint, sequence: bigint): boolean {
    const state = this.#senders.get(sender);
    if (state === undefined || incarnation > state.incarnation) {
      this.#senders.set(sender, { incarnation, highest: sequence, seen: 1n });
      return true;
    }
    if (incarnation < state.incarnation) return false;
    if (sequence > state.highest) {
      const shift = sequence - state.highest;
      state.seen = shift >= WINDOW ? 1n : ((state.seen << shift) | 1n) & MASK;
      state.highest = sequence;
      return true;
    }
    const behind = state.highest - sequence;
    if (behind >= WINDOW) return false;
    const bit = 1n << behind;
    if ((state.seen & bit) !== 0n) return false;
    state.seen |= bit;
    return true;
  }

  /** The incarnation last accepted from `sender`, if any. */
  incarnation(sender: string): bigint | undefined {
    return this.#senders.get(sender)?.incarnation;
  }
}
