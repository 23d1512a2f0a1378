// tcp: the backend accepts a connection within the timeout.
import { converse } from '../conversation.js';
import type { Probe } from '../probe.js';

export const tcpProbe: Probe = ({ host, port, check }) =>
  converse(host, port, check.timeoutMs, async () => ({ ok: true, detail: 'connected' }));
