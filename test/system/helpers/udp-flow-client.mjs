// The client of test/system/udp-kernel-nat.test.ts: keeps UDP flows (one
// socket each, so one source port each) open across commands, read as JSON
// lines on stdin; answers one JSON line per command on stdout.
//
//   {"op":"open","count":N}                  N more flows
//   {"op":"echo","size":S,"target":"IP:PORT"} every flow sends S random bytes; counts
//                                             replies that are byte-exact and come from the target
//   {"op":"who","target":"IP:PORT"}           every flow asks "WHO?": the backend ids, in flow order
//                                             ("text":"PORT?" asks that instead)
//   {"op":"flood","count":N,"target":...}     N new flows of one datagram each (socket opened,
//                                             sent, closed), at most 20 s
//   {"op":"ports"}                            every flow's local port, in flow order
//   {"op":"close"}                            closes every flow
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import readline from 'node:readline';

const flows = [];
const split = (target) => {
  const [host, port] = target.split(':');
  return { host, port: Number(port) };
};

function openFlow() {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    socket.waiting = null;
    socket.on('message', (message, peer) => socket.waiting?.(message, peer));
    socket.bind(0, () => resolve(socket));
  });
}

// Every flow sends `payload(i)` and waits for one reply (two tries, 1 s each).
async function exchange(target, payload) {
  const { host, port } = split(target);
  return Promise.all(flows.map(async (socket, i) => {
    const data = payload(i);
    for (let attempt = 0; attempt < 2; attempt++) {
      const reply = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve(null), 1000);
        socket.waiting = (message, peer) => {
          clearTimeout(timer);
          resolve({ message, peer });
        };
        socket.send(data, port, host);
      });
      socket.waiting = null;
      if (reply) return { data, ...reply };
    }
    return { data, message: null, peer: null };
  }));
}

async function handle(command) {
  switch (command.op) {
    case 'open':
      for (let i = 0; i < command.count; i++) flows.push(await openFlow());
      return { flows: flows.length };
    case 'echo': {
      const { host, port } = split(command.target);
      const results = await exchange(command.target, () => randomBytes(command.size));
      let exact = 0;
      let timeouts = 0;
      let wrongSource = 0;
      for (const r of results) {
        if (!r.message) timeouts++;
        else if (r.peer.address !== host || r.peer.port !== port) wrongSource++;
        else if (r.message.equals(r.data)) exact++;
      }
      return { exact, timeouts, wrongSource, total: results.length };
    }
    case 'who': {
      const results = await exchange(command.target, () => Buffer.from(command.text ?? 'WHO?'));
      return { ids: results.map((r) => (r.message ? r.message.toString() : null)) };
    }
    case 'flood': {
      const { host, port } = split(command.target);
      const deadline = Date.now() + 20_000;
      let sent = 0;
      while (sent < command.count && Date.now() < deadline) {
        const batch = [];
        for (let i = 0; i < 500 && sent < command.count; i++, sent++) {
          batch.push(new Promise((resolve) => {
            const socket = dgram.createSocket('udp4');
            socket.bind(0, () => socket.send(Buffer.from('flood'), port, host, () => {
              socket.close();
              resolve();
            }));
          }));
        }
        await Promise.all(batch);
      }
      return { sent };
    }
    case 'ports':
      return { ports: flows.map((socket) => socket.address().port) };
    case 'close':
      for (const socket of flows.splice(0)) socket.close();
      return { flows: 0 };
    default:
      return { error: `unknown op ${command.op}` };
  }
}

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  console.log(JSON.stringify(await handle(JSON.parse(line))));
}
