// The kernel's work items during a measurement, from the workqueue
// tracepoints (perf record -a; this VM has no hardware counters, but its
// tracepoints work): for a sockmap redirect to a peer's egress, each
// message is queued to the psock's backlog and sent by a kworker running
// sk_psock_backlog. For every such item: queued -> started (the kworker's
// wake-up and wait for a CPU) and started -> ended (its run: the send into
// the peer socket, which on loopback includes the receiver's TCP input).
//
// `startWorkqueueTrace(file)` starts `perf record` on every CPU; `stop()`
// ends it and resolves the items of `fn` (sk_psock_backlog by default):
// `{ items, waitUs: [..], runUs: [..] }`, or `{ error }`. Tracing costs time
// on the traced path itself: use it to see where time goes, and take the
// latency figures from a run without it.

import { rmSync } from 'node:fs';
import { runCommand, sleep, startProcess, stopProcess, which } from './proc.mjs';

const EVENTS = ['workqueue:workqueue_queue_work', 'workqueue:workqueue_execute_start', 'workqueue:workqueue_execute_end'];

/** Whether perf and the workqueue tracepoints can be used here ('' when they can, else why not). */
export function workqueueTraceProblem() {
  if (!which('perf')) return 'perf is not installed (apt-get install linux-perf)';
  return '';
}

export async function startWorkqueueTrace(file) {
  const handle = startProcess('perf-record', 'perf', ['record', '-q', '-a', '-o', file, ...EVENTS.flatMap((e) => ['-e', e])]);
  // perf needs a moment to open its events on every CPU.
  await sleep(500);
  return {
    stop: async (fn = 'sk_psock_backlog') => {
      if (handle.exited) return { error: `perf record exited early: ${handle.output().trim().split('\n').slice(-2).join(' | ')}` };
      try {
        process.kill(handle.pid, 'SIGINT');
      } catch {
        // already gone
      }
      await stopProcess(handle, 10000);
      const r = await runCommand('perf', ['script', '-i', file, '-F', 'time,event,trace'], { timeoutMs: 120000 });
      rmSync(file, { force: true });
      if (r.code !== 0) return { error: `perf script: exit ${r.code}: ${r.stderr.trim().split('\n').slice(-1)}` };
      return parse(r.stdout, fn);
    },
  };
}

/** perf script lines -> per work item of `fn`: wait (queue -> start) and run (start -> end), µs. */
function parse(text, fn) {
  const queued = new Map();
  const started = new Map();
  const waitUs = [];
  const runUs = [];
  for (const line of text.split('\n')) {
    if (!line.includes(fn)) continue;
    const m = /^\s*([\d.]+):\s+workqueue:workqueue_(queue_work|execute_start|execute_end):\s+work struct[ =](0x[0-9a-f]+)/.exec(line);
    if (!m) continue;
    const t = Number(m[1]) * 1e6;
    const work = m[3];
    if (m[2] === 'queue_work') {
      queued.set(work, t);
    } else if (m[2] === 'execute_start') {
      if (queued.has(work)) waitUs.push(t - queued.get(work));
      queued.delete(work);
      started.set(work, t);
    } else if (started.has(work)) {
      runUs.push(t - started.get(work));
      started.delete(work);
    }
  }
  return { items: runUs.length, waitUs, runUs };
}
