// One line for an engine.apply() failure that names the address, for the log,
// stderr at start, and a reload's answer.
import type { FulcrumConfig } from '../config/types.js';
import { describeHolders, findAddressHolders } from '../listen-lock/holder.js';

const BIND_CODES: Readonly<Record<string, string>> = {
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available on this host',
  EACCES: 'permission denied',
};

/** The engine's Error carries the errno name in `code` and the service whose listener failed in `service`. */
export function describeApplyError(err: unknown, config: FulcrumConfig): string {
  const { code, service: name } = (err ?? {}) as { code?: string; service?: string };
  const reason = code && BIND_CODES[code] ? `${BIND_CODES[code]} (${code})` : errorText(err);
  const service = config.services.find((s) => s.name === name);
  if (!service) return `cannot apply the config: ${reason}`;
  // The listen-address lock: name who holds it (another Fulcrum, or anything else).
  const holders = code === 'EADDRINUSE' ? findAddressHolders(service.protocol, service.listen.host, service.listen.port) : [];
  const heldBy = holders.length > 0 ? `; held by ${describeHolders(holders)}` : '';
  return `cannot listen on ${service.listen.text} (service ${service.name}): ${reason}${heldBy}`;
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
