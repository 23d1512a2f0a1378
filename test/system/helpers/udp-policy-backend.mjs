// A UDP backend for test/system/udp-kernel-policy.test.ts, bound to the
// IP:PORT of its one argument. "PORT?" is answered with the sender's
// address and port as it sees them (the NAT port of the kernel datapath's
// flow); a datagram starting "x3:" is echoed back three times; anything else
// is echoed once, unchanged. Prints "ready" once bound.
import dgram from 'node:dgram';

const [host, port] = process.argv[2].split(':');
const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
socket.on('message', (message, peer) => {
  const text = message.length <= 16 ? message.toString() : '';
  if (text === 'PORT?') {
    socket.send(Buffer.from(`${peer.address}:${peer.port}`), peer.port, peer.address);
    return;
  }
  const times = text.startsWith('x3:') ? 3 : 1;
  for (let i = 0; i < times; i++) socket.send(message, peer.port, peer.address);
});
socket.bind(Number(port), host, () => console.log('ready'));
