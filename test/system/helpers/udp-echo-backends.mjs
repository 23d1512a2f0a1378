// UDP backends for test/system/udp-kernel-nat.test.ts: one socket per
// IP:PORT:ID argument. A datagram "WHO?" is answered with the backend's ID;
// every other datagram is echoed back unchanged (byte-exact checks). Prints
// "ready" once every socket is bound.
import dgram from 'node:dgram';

let bound = 0;
for (const spec of process.argv.slice(2)) {
  const [host, port, id] = spec.split(':');
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
  socket.on('message', (message, peer) => {
    const reply = message.length === 4 && message.toString() === 'WHO?' ? Buffer.from(id) : message;
    socket.send(reply, peer.port, peer.address);
  });
  socket.bind(Number(port), host, () => {
    if (++bound === process.argv.length - 2) console.log('ready');
  });
}
