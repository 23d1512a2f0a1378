// Every check type's probe, by the name the config uses.
import type { CheckType } from '../../config/health-types.js';
import type { Probe } from '../probe.js';
import { httpProbe } from './http.js';
import { mysqlProbe } from './mysql.js';
import { postgresProbe } from './postgres.js';
import { redisProbe } from './redis.js';
import { sendExpectProbe } from './send-expect.js';
import { tcpProbe } from './tcp.js';
import { udpProbe } from './udp.js';

export const PROBES: Readonly<Record<CheckType, Probe>> = {
  tcp: tcpProbe,
  send_expect: sendExpectProbe,
  http: httpProbe,
  udp: udpProbe,
  postgres: postgresProbe,
  mysql: mysqlProbe,
  redis: redisProbe,
};
