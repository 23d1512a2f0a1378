// What keeps every VIP of the BGP announcement withdrawn (src/announce/announcer.ts):
// the announcer's phase, an admin drain, a stopped engine, and session sync
// still learning the peers' clients at start, in that order of precedence.
import t from 'tap';
import { announceHeldBack } from '../../src/announce/announcer.js';

const running = { phase: 'running', drained: false, engineStopped: false, learning: false } as const;

t.test('nothing holds a running, undrained node with a live engine that has learned its peers', async (t) => {
  t.equal(announceHeldBack(running), undefined);
});

t.test('each reason on its own', async (t) => {
  t.equal(announceHeldBack({ ...running, phase: 'starting' }), 'starting');
  t.equal(announceHeldBack({ ...running, phase: 'stopping' }), 'stopping');
  t.equal(announceHeldBack({ ...running, drained: true }), 'drained by admin');
  t.equal(announceHeldBack({ ...running, engineStopped: true }), 'engine stopped');
  t.equal(announceHeldBack({ ...running, learning: true }), "session sync: learning the peers' clients");
});

t.test('stopping and draining outrank learning (the reason shown is the one an operator acts on)', async (t) => {
  t.equal(announceHeldBack({ ...running, phase: 'stopping', learning: true }), 'stopping');
  t.equal(announceHeldBack({ ...running, drained: true, learning: true }), 'drained by admin');
  t.equal(announceHeldBack({ ...running, engineStopped: true, learning: true }), 'engine stopped');
});
