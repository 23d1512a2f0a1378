// The BIRD 2 configuration Fulcrum writes for `announce:` (docs/ecmp.md).
//
// Each VIP is its own static protocol holding one /32 route, exported to
// every BGP neighbor with this node as next hop. All of them start
// `disabled`: a VIP is announced by `birdc enable <protocol>` and withdrawn by
// `birdc disable <protocol>`. That is chosen over regenerating the file and
// `birdc configure` because it is one atomic, idempotent switch per VIP that
// never reparses the config (a bad file cannot half-apply), takes effect at
// once, and leaves the BGP sessions alone; and a BIRD that restarts comes up
// with nothing announced until Fulcrum, which reconciles every second,
// enables what should be. BFD runs on the BGP sessions when `bfd` is on.
import type { AnnounceConfig } from '../config/types.js';

/** The static protocol that carries `vip`: fulcrum_vip_10_203_0_100. */
export function vipProtocol(vip: string): string {
  return `fulcrum_vip_${vip.replaceAll('.', '_')}`;
}

/** The BGP protocol for the i-th neighbor. */
export function neighborProtocol(index: number): string {
  return `fulcrum_bgp_${index + 1}`;
}

/** Whole seconds, at least `min` (BIRD's BGP timers are in seconds). */
function seconds(ms: number, min: number): number {
  return Math.max(min, Math.round(ms / 1000));
}

/**
 * The protocols (static routes, BFD, BGP). `own`: the whole file for a BIRD
 * Fulcrum runs (router id, device protocol, log to stderr); otherwise only
 * the protocols, for an existing BIRD whose config includes this file.
 */
export function birdConfig(config: AnnounceConfig, own: boolean): string {
  const lines: string[] = ['# Written by Fulcrum from its announce: block; edits are overwritten at start.', ''];
  if (own) {
    lines.push(`router id ${config.routerId};`, 'log stderr { info, remote, warning, error, auth, fatal, bug };', '', 'protocol device fulcrum_device {', '}', '');
  }
  if (config.bfd) {
    lines.push(
      'protocol bfd fulcrum_bfd {',
      '  interface "*" {',
      `    min rx interval ${config.bfdIntervalMs} ms;`,
      `    min tx interval ${config.bfdIntervalMs} ms;`,
      `    multiplier ${config.bfdMultiplier};`,
      '  };',
      '}',
      '',
    );
  }
  for (const vip of config.vips) {
    lines.push(`protocol static ${vipProtocol(vip)} {`, '  disabled yes;', '  ipv4;', `  route ${vip}/32 blackhole;`, '}', '');
  }
  const holdS = seconds(config.holdTimeMs, 3);
  config.neighbors.forEach((neighbor, i) => {
    lines.push(
      `protocol bgp ${neighborProtocol(i)} {`,
      `  local ${config.localAddress} as ${config.localAs};`,
      `  neighbor ${neighbor.address} as ${neighbor.as};`,
      `  hold time ${holdS};`,
      `  keepalive time ${Math.max(1, Math.floor(holdS / 3))};`,
      // Reconnect quickly after a router restart (BIRD waits 5s and 120s by default).
      '  connect delay time 1;',
      '  connect retry time 5;',
      '  error wait time 1, 30;',
      ...(config.bfd ? ['  bfd on;'] : []),
      '  ipv4 {',
      '    import none;',
      '    export where proto ~ "fulcrum_vip_*";',
      '    next hop self;',
      '  };',
      '}',
      '',
    );
  });
  return lines.join('\n');
}
