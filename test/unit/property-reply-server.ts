// For the health-check property tests (test/unit/health-*-property.test.ts):
// a loopback TCP server that answers each connection with the bytes the next
// case chose, then FIN, and a call that runs one probe against it and says
// how it ended. Properties run one case at a time, so one server serves all.
import { createServer, type Socket } from 'node:net';
import fc from 'fast-check';
import type { Test } from 'tap';
import { buildHealthCheck } from '../../src/config/health-check.js';
import { CheckFailure } from '../../src/errors.js';
import { PROBES } from '../../src/health/checks/index.js';
import type { ProbeResult } from '../../src/health/probe.js';

const HOST = '127.0.0.1';

/** How one probe ended: a result, or what it threw. */
export type Outcome = { result: ProbeResult } | { thrown: unknown };

export interface ReplyServer {
  /** Run the probe of `check.type` against a server that sends `reply` and closes. */
  probe(check: Record<string, unknown>, reply: Uint8Array, password?: string): Promise<Outcome>;
}

export async function startReplyServer(t: Test): Promise<ReplyServer> {
  let reply: Uint8Array = new Uint8Array(0);
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket)).on('error', () => undefined);
    socket.resume(); // read what the probe sends, so closing never resets the connection
    socket.end(reply);
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const port = (server.address() as { port: number }).port;
  return {
    async probe(keys, bytes, password) {
      reply = bytes;
      const check = buildHealthCheck({ timeout: '2s', ...keys }, undefined)!;
      try {
        return { result: await PROBES[check.type]({ host: HOST, port, check, password }) };
      } catch (thrown) {
        return { thrown };
      }
    },
  };
}

/** The probes' contract: any reply ends in a result or a CheckFailure (a reason), never another error (a bug). */
export function endedCleanly(outcome: Outcome): boolean {
  return 'result' in outcome || outcome.thrown instanceof CheckFailure;
}

/** Passed: a result with ok true. */
export function passed(outcome: Outcome): boolean {
  return 'result' in outcome && outcome.result.ok;
}

/** What happened, for a property's failure message (at most 200 characters). */
export function describe(outcome: Outcome): string {
  const e = 'thrown' in outcome ? outcome.thrown : undefined;
  const text = 'result' in outcome ? JSON.stringify(outcome.result) : e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/**
 * The property every database check shares: whatever `answers` the server
 * gives, the anonymous and the login probe (`checks`) each end in a result or
 * a CheckFailure, never another error. `found`: answers that once broke it,
 * replayed first on every run.
 */
export async function everyAnswerEndsCleanly(
  t: Test,
  checks: ReadonlyArray<readonly [string, Record<string, unknown>]>,
  answers: fc.Arbitrary<Uint8Array>,
  found: readonly Uint8Array[],
): Promise<void> {
  const server = await startReplyServer(t);
  for (const [name, check] of checks) {
    await fc.assert(
      fc.asyncProperty(answers, async (answer) => {
        const outcome = await server.probe(check, answer, 'pw');
        if (!endedCleanly(outcome)) throw new Error(describe(outcome));
      }),
      { numRuns: 200, examples: found.map((answer): [Uint8Array] => [answer]) },
    );
    t.pass(`${name}: 200 answers and ${found.length} found before`);
  }
}
