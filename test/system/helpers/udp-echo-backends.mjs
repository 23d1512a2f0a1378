// UDP backends for test/system/udp-kernel-nat.test.ts: one socket per
// IP:PORT:ID argument. A datagram "WHO?" is answered with the backend's ID;
// "PORT?" with "ID PORT", the source port it came from (the NAT port);
// every other datagram is echoed back unchanged (byte-exact checks). Prints
// "ready" once every socket is bound. Lines on stdin: "stop ID" closes that
// backend's socket (its port then answers ICMP port unreachable, so health
// checks fail), "start ID" binds it again; each answered with "ok ID".
import dgram from 'node:dgram';
import readline from 'node:readline';

const backends = new Map();

function bind(host, port, id) {
  return new Promise((resolve) => {
    const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
    socket.on('message', (message, peer) => {
      const text = message.length <= 5 ? message.toString() : '';
      const reply = text === 'WHO?' ? Buffer.from(id) : text === 'PORT?' ? Buffer.from(`${id} ${peer.port}`) : message;
      socket.send(reply, peer.port, peer.address);
    });
    socket.bind(port, host, () => resolve(socket));
  });
}

const specs = process.argv.slice(2).map((spec) => {
  const [host, port, id] = spec.split(':');
  return { host, port: Number(port), id };
});
for (const { host, port, id } of specs) backends.set(id, { host, port, socket: await bind(host, port, id) });
console.log('ready');

for await (const line of readline.createInterface({ input: process.stdin })) {
  const [op, id] = line.trim().split(' ');
  const backend = backends.get(id);
  if (!backend) continue;
  if (op === 'stop' && backend.socket) {
    await new Promise((resolve) => backend.socket.close(resolve));
    backend.socket = null;
  } else if (op === 'start' && !backend.socket) {
    backend.socket = await bind(backend.host, backend.port, id);
  }
  console.log(`ok ${id}`);
}
