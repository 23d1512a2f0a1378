// The `ha:` block's checks that the schema cannot express: addresses parsed,
// the advert interval in VRRPv3's 10ms steps and range, durations bounded,
// no address twice, tracked services that exist. Called by validate.ts; the
// schema has already checked types and filled in defaults.
import { isAbsolute } from 'node:path';
import type { ConfigIssue } from '../errors.js';
import { parseDuration } from './duration.js';
import { DURATION_BOUNDS, type RawHa } from './raw-types.js';
import type { ConfigPath, YamlSource } from './source.js';
import type { HaConfig, HaVirtualIp } from './types.js';

/** VRRPv3's Max Adver Int: 12 bits of centiseconds (the schema has the range, 10ms to 40950ms). */
const ADVERT_INTERVAL = { ...DURATION_BOUNDS['ha.advert_interval'], stepMs: 10 } as const;

const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** A dotted-quad IPv4 address in canonical form, or undefined. */
export function parseIpv4(text: string): string | undefined {
  const match = IPV4_RE.exec(text);
  if (match === null) return undefined;
  const parts = match.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return parts.join('.');
}

export class HaChecker {
  readonly #source: YamlSource;
  readonly #issues: ConfigIssue[] = [];
  readonly #durations = new Map<string, number>();
  readonly #vips: HaVirtualIp[] = [];

  constructor(source: YamlSource) {
    this.#source = source;
  }

  /** Issues in `ha` (values of the wrong type were reported by the schema and are skipped). */
  check(ha: Record<string, unknown>, serviceNames: ReadonlySet<string>): ConfigIssue[] {
    const at: ConfigPath = ['ha'];
    const seen = new Map<string, number>();
    if (Array.isArray(ha.virtual_ips)) {
      ha.virtual_ips.forEach((value, i) => {
        if (typeof value !== 'string') return;
        const path = [...at, 'virtual_ips', i];
        const vip = parseVirtualIp(value);
        if (typeof vip === 'string') return this.#report(path, `bad virtual IP ${JSON.stringify(value)}: ${vip}`);
        const first = seen.get(vip.address);
        if (first !== undefined) return this.#report(path, `duplicate virtual IP ${vip.address} (also at line ${this.#source.line([...at, 'virtual_ips', first])})`);
        seen.set(vip.address, i);
        this.#vips.push(vip);
      });
    }
    const interval = this.#duration(ha, 'advert_interval', ADVERT_INTERVAL.maxMs);
    if (interval !== undefined && (interval < ADVERT_INTERVAL.minMs || interval % ADVERT_INTERVAL.stepMs !== 0)) {
      const { stepMs, minMs, maxMs } = ADVERT_INTERVAL;
      this.#report([...at, 'advert_interval'], `ha.advert_interval ${JSON.stringify(ha.advert_interval)}: expected a multiple of ${stepMs}ms from ${minMs}ms to ${maxMs}ms (VRRPv3 counts centiseconds)`);
    }
    this.#duration(ha, 'preempt_delay', DURATION_BOUNDS['ha.preempt_delay'].maxMs, true);
    this.#duration(ha, 'garp_delay', DURATION_BOUNDS['ha.garp_delay'].maxMs, true);
    this.#duration(ha, 'garp_refresh', DURATION_BOUNDS['ha.garp_refresh'].maxMs, true);
    if (Array.isArray(ha.unicast_peers)) {
      const peers = new Map<string, number>();
      ha.unicast_peers.forEach((value, i) => {
        if (typeof value !== 'string') return;
        const path = [...at, 'unicast_peers', i];
        const peer = parseIpv4(value);
        if (peer === undefined) return this.#report(path, `bad unicast peer ${JSON.stringify(value)}: expected an IPv4 address such as 10.200.0.3`);
        if (seen.has(peer)) return this.#report(path, `unicast peer ${peer} is one of the virtual IPs; expected the peer's own address`);
        if (peers.has(peer)) return this.#report(path, `duplicate unicast peer ${peer}`);
        peers.set(peer, i);
      });
    }
    if (typeof ha.source_address === 'string' && parseIpv4(ha.source_address) === undefined) {
      this.#report([...at, 'source_address'], `bad source_address ${JSON.stringify(ha.source_address)}: expected an IPv4 address`);
    }
    if (typeof ha.notify === 'string' && !isAbsolute(ha.notify)) {
      this.#report([...at, 'notify'], `notify ${JSON.stringify(ha.notify)}: expected an absolute path to a program`);
    }
    const track = ha.track;
    if (typeof track === 'object' && track !== null && Array.isArray((track as Record<string, unknown>).services)) {
      ((track as Record<string, unknown>).services as unknown[]).forEach((name, i) => {
        if (typeof name === 'string' && !serviceNames.has(name)) {
          const known = [...serviceNames].join(', ');
          this.#report([...at, 'track', 'services', i], `tracked service "${name}" does not exist; expected one of: ${known}`);
        }
      });
    }
    return this.#issues;
  }

  /** The typed block; call only when check() and the schema found nothing. */
  build(raw: RawHa): HaConfig {
    return {
      interface: raw.interface,
      vrid: raw.vrid,
      priority: raw.priority,
      virtualIps: this.#vips,
      advertIntervalMs: this.#durations.get('advert_interval')!,
      preempt: raw.preempt,
      preemptDelayMs: this.#durations.get('preempt_delay')!,
      unicastPeers: raw.unicast_peers.map((p) => parseIpv4(p)!),
      sourceAddress: raw.source_address === undefined ? undefined : parseIpv4(raw.source_address),
      notify: raw.notify,
      garp: { repeat: raw.garp_repeat, delayMs: this.#durations.get('garp_delay')!, refreshMs: this.#durations.get('garp_refresh')! },
      track: { services: raw.track.services, weight: raw.track.weight },
    };
  }

  #duration(ha: Record<string, unknown>, key: string, maxMs: number, zeroIsOff = false): number | undefined {
    const value = ha[key];
    if (value === undefined) return undefined;
    const result = parseDuration(value, `ha.${key}`, maxMs, zeroIsOff ? { zero: 'off' } : {});
    if (!result.ok) return this.#report(['ha', key], result.message);
    this.#durations.set(key, result.ms);
    return result.ms;
  }

  #report(path: ConfigPath, message: string): undefined {
    this.#issues.push(this.#source.issue(path, message));
    return undefined;
  }
}

/** `10.0.0.1` or `10.0.0.1/24` → the address and its `ip addr` form, or why not. */
function parseVirtualIp(text: string): HaVirtualIp | string {
  const [host = '', prefix, extra] = text.split('/');
  if (extra !== undefined) return 'expected an IPv4 address with an optional /prefix, e.g. 10.200.0.100/24';
  const address = parseIpv4(host);
  if (address === undefined) return 'expected an IPv4 address with an optional /prefix, e.g. 10.200.0.100/24 (IPv6 is not supported yet)';
  const bits = prefix === undefined ? 32 : /^\d{1,2}$/.test(prefix) ? Number(prefix) : NaN;
  if (!(bits >= 1 && bits <= 32)) return `prefix length ${JSON.stringify(prefix)}: expected 1 to 32`;
  return { address, cidr: `${address}/${bits}` };
}
