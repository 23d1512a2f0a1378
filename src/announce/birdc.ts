// Talking to BIRD through birdc (its control socket), one command per call.
// Commands are rare (a VIP changes state, or the once-a-second reconcile), so
// a process per command costs nothing that matters and keeps each exchange
// independent: a BIRD that restarted or hung never leaves a half-read reply.
import { execFile } from 'node:child_process';

/** A birdc that does not answer within this is counted as a failure. */
export const BIRDC_TIMEOUT_MS = 3000;

export interface BirdcResult {
  ok: boolean;
  /** stdout without the "BIRD x.y ready." greeting, or why it failed. */
  output: string;
}

export function birdc(program: string, socket: string, args: readonly string[], timeoutMs = BIRDC_TIMEOUT_MS): Promise<BirdcResult> {
  return new Promise((resolve) => {
    execFile(program, ['-s', socket, ...args], { timeout: timeoutMs, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      const output = stdout.replace(/^BIRD [^\n]* ready\.\n?/, '').trim();
      if (err) resolve({ ok: false, output: (stderr.trim() || output || err.message).split('\n')[0]! });
      else resolve({ ok: true, output });
    });
  });
}

export interface ProtocolRow {
  name: string;
  proto: string;
  /** BIRD's state column: up, down, start, stop... */
  state: string;
  /** The info column (BGP: Established, Active, Connect...; empty for most others). */
  info: string;
}

/** Parse `show protocols` (name, proto, table, state, since, info). */
export function parseProtocols(output: string): ProtocolRow[] {
  const rows: ProtocolRow[] = [];
  for (const line of output.split('\n')) {
    if (line.startsWith('Name ') || line.trim() === '') continue;
    const match = /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)(?:\s+(.*))?$/.exec(line.trimEnd());
    if (match === null) continue;
    const info = (match[6] ?? '').trim();
    // A since column with a date and a time ("2024-05-01 10:00:00") spills one token into info.
    const parts = info.split(/\s+/);
    rows.push({ name: match[1]!, proto: match[2]!, state: match[4]!, info: /^\d\d:\d\d/.test(parts[0] ?? '') ? parts.slice(1).join(' ') : info });
  }
  return rows;
}
