// findAddressHolders (src/listen-lock/holder.ts) against sockets this test
// opens: TCP on IPv4, IPv6 and the wildcard, UDP; its own pid comes back.
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { createServer } from 'node:net';
import t, { type Test } from 'tap';
import { describeHolders, findAddressHolders } from '../../src/listen-lock/holder.js';

async function tcpListener(t: Test, host: string): Promise<number> {
  const server = createServer();
  server.listen(0, host);
  await once(server, 'listening');
  t.teardown(() => server.close());
  return (server.address() as { port: number }).port;
}

t.test('a TCP listener on 127.0.0.1, [::1] and 0.0.0.0 is found with this pid', async (t) => {
  for (const host of ['127.0.0.1', '::1']) {
    const port = await tcpListener(t, host);
    const holders = findAddressHolders('tcp', host, port);
    t.same(holders.map((h) => h.pid), [process.pid], `${host}: this process`);
    t.match(describeHolders(holders), new RegExp(`^pid ${process.pid} \\(.*node`), 'named with its command line');
    t.same(findAddressHolders('udp', host, port), [], `${host}: not a UDP socket`);
  }
  const wildcard = await tcpListener(t, '0.0.0.0');
  t.same(findAddressHolders('tcp', '127.0.0.2', wildcard).map((h) => h.pid), [process.pid], 'a wildcard listener holds every address of its port');
});

t.test('a UDP socket is found; a free port has no holder', async (t) => {
  const socket = createSocket('udp4');
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  t.teardown(() => socket.close());
  const { port } = socket.address();
  t.same(findAddressHolders('udp', '127.0.0.1', port).map((h) => h.pid), [process.pid]);
  t.same(findAddressHolders('udp', '127.0.0.3', port), [], 'another specific address is not held by it');
  t.same(describeHolders([]), '');
});
