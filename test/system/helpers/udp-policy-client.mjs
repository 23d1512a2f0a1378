// The client of test/system/udp-kernel-policy.test.ts: UDP sockets bound to
// chosen source addresses (one client address each), kept across commands
// read as JSON lines on stdin; one JSON answer line per command on stdout.
//
//   {"op":"open","id":"a","from":"IP"}              a socket bound to IP (a new source port)
//   {"op":"echo","id":"a","target":"IP:PORT","count":N,"size":S,"waitMs":W}
//        N requests one after another, each S random bytes, each waiting W ms
//        for its reply: {exact, timeouts, wrong} (exact: byte-exact, from target)
//   {"op":"ask","id":"a","target":...,"text":"...","waitMs":W}
//        one datagram; every reply that arrives within W ms: {replies: [text]}
//   {"op":"burst","ids":["a","b"],"target":...,"count":N}
//        N datagrams ("0", "1", ...) round-robin over the sockets as fast as
//        they go, then 500 ms for replies: {sent, replies, sendMs}
//        (replies: distinct datagrams echoed back)
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import readline from 'node:readline';

const sockets = new Map();
const split = (target) => {
  const [host, port] = target.split(':');
  return { host, port: Number(port) };
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function open(from) {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    socket.listener = null;
    socket.on('message', (message, peer) => socket.listener?.(message, peer));
    socket.once('error', reject);
    socket.bind(0, from, () => resolve(socket));
  });
}

/** Sends `data` on `socket`, collecting replies for `waitMs` (or until the first, with `first`). */
function exchange(socket, target, data, waitMs, first) {
  const { host, port } = split(target);
  return new Promise((resolve) => {
    const replies = [];
    const done = () => {
      clearTimeout(timer);
      socket.listener = null;
      resolve(replies);
    };
    const timer = setTimeout(done, waitMs);
    socket.listener = (message, peer) => {
      replies.push({ message, peer });
      if (first) done();
    };
    socket.send(data, port, host);
  });
}

async function handle(command) {
  switch (command.op) {
    case 'open':
      sockets.set(command.id, await open(command.from));
      return { ok: true };
    case 'echo': {
      const socket = sockets.get(command.id);
      const { host, port } = split(command.target);
      let exact = 0;
      let timeouts = 0;
      let wrong = 0;
      for (let i = 0; i < command.count; i++) {
        const data = randomBytes(command.size);
        const [reply] = await exchange(socket, command.target, data, command.waitMs, true);
        if (!reply) timeouts++;
        else if (reply.peer.address === host && reply.peer.port === port && reply.message.equals(data)) exact++;
        else wrong++;
      }
      return { exact, timeouts, wrong };
    }
    case 'ask': {
      const replies = await exchange(sockets.get(command.id), command.target, Buffer.from(command.text), command.waitMs, false);
      return { replies: replies.map((r) => r.message.toString()) };
    }
    case 'burst': {
      const { host, port } = split(command.target);
      const list = command.ids.map((id) => sockets.get(id));
      const seen = new Set();
      for (const socket of list) socket.listener = (message) => seen.add(message.toString());
      const start = process.hrtime.bigint();
      const sends = [];
      for (let i = 0; i < command.count; i++) {
        const socket = list[i % list.length];
        sends.push(new Promise((resolve) => socket.send(Buffer.from(String(i)), port, host, resolve)));
      }
      await Promise.all(sends);
      const sendMs = Number(process.hrtime.bigint() - start) / 1e6;
      await sleep(500);
      for (const socket of list) socket.listener = null;
      return { sent: command.count, replies: seen.size, sendMs };
    }
    default:
      return { error: `unknown op ${command.op}` };
  }
}

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  console.log(JSON.stringify(await handle(JSON.parse(line))));
}
