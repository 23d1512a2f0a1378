// iperf3 as load generator: a server on a loopback port and JSON client runs.
//
// An iperf3 server handles one test at a time; tests run back to back against
// the same server. After a failed test the server may still wait for the dead
// client (up to --rcv-timeout), so callers restart it then (`restartIperfServer`).

import { startProcess, stopProcess, runCommand, which, firstLine } from './proc.mjs';
import { waitForListen } from './net.mjs';

/** `iperf3 -v`'s first line, or null when iperf3 is not installed. */
export function iperf3Version() {
  return which('iperf3') ? firstLine('iperf3', ['-v']) : null;
}

/** Start `iperf3 -s` on 127.0.0.1:`port`; resolves the handle once it listens. */
export async function startIperfServer(port) {
  if (!which('iperf3')) throw new Error('iperf3 is not installed (apt-get install iperf3)');
  // --rcv-timeout bounds how long the server waits on a client that vanished mid-test.
  const handle = startProcess('iperf3-server', 'iperf3', ['-s', '-B', '127.0.0.1', '-p', String(port), '--rcv-timeout', '10000']);
  try {
    await waitForListen(port, { timeoutMs: 5000, handle });
  } catch (err) {
    await stopProcess(handle, 1000);
    throw err;
  }
  return handle;
}

/** Stop `handle` and start a new server on the same port. */
export async function restartIperfServer(handle, port) {
  await stopProcess(handle, 2000);
  return startIperfServer(port);
}

/**
 * Run one TCP test: `iperf3 -c 127.0.0.1 -p port -t seconds -O omit -P streams -J`.
 * Never rejects. Resolves
 * `{ ok: true, bitsPerSecond, clientCpuPct, serverCpuPct, json }` (bitsPerSecond is
 * end.sum_received, what the receiver got after the omitted warm-up) or
 * `{ ok: false, error }` with a one-line reason. Killed after the test's length + 15 s.
 */
export async function runIperfTcp({ port, seconds, omit = 1, streams = 1, extraArgs = [] }) {
  const args = [
    '-c', '127.0.0.1', '-p', String(port),
    '-t', String(seconds), '-O', String(omit), '-P', String(streams),
    '--connect-timeout', '3000', '-J', ...extraArgs,
  ];
  const timeoutMs = (seconds + omit) * 1000 + 15000;
  const r = await runCommand('iperf3', args, { timeoutMs });
  if (r.error) return { ok: false, error: `iperf3 did not start: ${r.error.message}` };
  if (r.timedOut) return { ok: false, error: `iperf3 killed after ${timeoutMs} ms` };
  let json;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    const detail = (r.stderr || r.stdout).trim().split('\n').slice(-1)[0] ?? '';
    return { ok: false, error: `iperf3 exit ${r.code}, no JSON: ${detail}` };
  }
  if (json.error) return { ok: false, error: `iperf3: ${json.error}` };
  const bps = json.end?.sum_received?.bits_per_second;
  if (!Number.isFinite(bps)) return { ok: false, error: 'iperf3 JSON has no end.sum_received.bits_per_second' };
  const cpu = json.end.cpu_utilization_percent ?? {};
  return { ok: true, bitsPerSecond: bps, clientCpuPct: cpu.host_total, serverCpuPct: cpu.remote_total, json };
}
