// Tracking: whether this node's data plane can serve. A node that cannot
// (engine stopped, or a tracked service with no backend up) either lowers its
// advertised priority by `weight` (keepalived's track weight), so a peer with
// preempt takes over, or with weight 0 enters the Fault state, which gives up
// Master at once whatever the peer's preempt setting.
import type { Engine } from '../engine/engine.js';

export interface TrackSettings {
  /** Services that need at least one backend up (state up) to count as serving. */
  services: readonly string[];
  /** 0: fault; otherwise subtracted from the priority (result at least 1). */
  weight: number;
}

export interface TrackVerdict {
  ok: boolean;
  /** Why not, for the log: "engine stopped", "service pg: no backend up". */
  reasons: string[];
}

/** Check the engine now. Reads engine.stats() (backend states as BackendControl set them). */
export function checkDataPlane(engine: Pick<Engine, 'stats' | 'stopped'>, settings: TrackSettings): TrackVerdict {
  if (engine.stopped) return { ok: false, reasons: ['engine stopped'] };
  const reasons: string[] = [];
  const stats = engine.stats();
  for (const name of settings.services) {
    const service = stats.services.find((s) => s.name === name);
    if (service === undefined) reasons.push(`service ${name}: not running`);
    else if (!service.backends.some((b) => b.state === 'up')) reasons.push(`service ${name}: no backend up`);
  }
  return { ok: reasons.length === 0, reasons };
}

/** The priority to advertise and whether to fault, given the verdict. */
export function trackedPriority(configured: number, settings: TrackSettings, verdict: TrackVerdict): { priority: number; fault: boolean } {
  if (verdict.ok) return { priority: configured, fault: false };
  if (settings.weight === 0) return { priority: configured, fault: true };
  return { priority: Math.max(1, configured - settings.weight), fault: false };
}
