// Hostile and replayed session-sync datagrams, for test/system/sync-vrrp.test.ts.
// usage: node sync-send.mjs KEYFILE HOST PORT SERVICE BACKEND CLIENT_IP
// Sends, paced so the receiver's socket buffer never overflows:
//   250 random byte strings (1 to 1500 bytes), 250 with a bad version,
//   250 signed with the wrong key, 250 correctly signed but an hour old
//   (each of the last three carries a record that would move CLIENT_IP's
//   sticky entry to BACKEND if it were applied), then one valid message and 100 copies of
//   it (replays). Prints {"sent": N} when done.
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeMessage } from '../../../dist/sync/wire.js';
import { hashSourceIpv4 } from './flow-hash.mjs';

const [keyFile, host, port, service, backend, clientIp] = process.argv.slice(2);

const clientKey = hashSourceIpv4(clientIp);
const key = Buffer.from(readFileSync(keyFile, 'utf8').trim());
const socket = createSocket('udp4');
let sent = 0;
const send = (datagram) =>
  new Promise((resolve) => socket.send(datagram, Number(port), host, () => {
    sent++;
    resolve();
  }));

// Would stick the client to BACKEND: harmful if applied.
const hostile = [{ kind: 'sticky', service, backend, ageMs: 0, key: clientKey }];
const header = (sentAt = Date.now()) => ({ incarnation: BigInt(Date.now()), sequence: BigInt(sent + 1), sentAt });
const batches = [
  () => Buffer.from(Array.from({ length: 1 + Math.floor(Math.random() * 1500) }, () => Math.floor(Math.random() * 256))),
  () => {
    const m = encodeMessage(key, header(), hostile);
    m.writeUInt8(9, 4); // version 9
    return m;
  },
  () => encodeMessage(Buffer.from('not the key, not the key, not it'), header(), hostile),
  () => encodeMessage(key, header(Date.now() - 3_600_000), hostile),
];
for (const make of batches) {
  for (let i = 0; i < 250; i++) {
    await send(make());
    if (i % 25 === 24) await sleep(5);
  }
}
const valid = encodeMessage(key, { incarnation: BigInt(Date.now()), sequence: 1n, sentAt: Date.now() }, [
  { kind: 'sticky', service: 'no-such-service', backend, ageMs: 0, key: 42n },
]);
await send(valid);
for (let i = 0; i < 100; i++) {
  await send(valid);
  if (i % 25 === 24) await sleep(5);
}
console.log(JSON.stringify({ sent }));
socket.close();
