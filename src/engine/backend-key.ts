// One key for a backend of a service, wherever backends are kept in a map
// (slots, control, health, views, metrics): the service name and the
// backend's address, joined by a NUL, which neither can contain.

export const backendKey = (service: string, address: string): string => `${service}\u0000${address}`;

/** The service and address of a backendKey(). */
export function splitBackendKey(key: string): { service: string; address: string } {
  const at = key.indexOf('\u0000');
  return { service: key.slice(0, at), address: key.slice(at + 1) };
}
