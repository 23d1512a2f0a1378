// A short real proxy check of an installed `fulcrum` (argv[2]), working in
// directory argv[3]: an echo backend on 127.0.0.1, `fulcrum run` in front of
// it, 20 connections each sending 64 KiB of random bytes and reading them
// back byte for byte, then SIGTERM and a clean exit. Bounded: 30 s in all.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';

const [fulcrum, dir] = process.argv.slice(2);
const deadline = setTimeout(() => fail('timed out after 30 s'), 30_000);
let proc;

function fail(why) {
  console.error(`proxy check failed: ${why}`);
  proc?.kill('SIGKILL');
  process.exit(1);
}

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

async function freePort() {
  const server = createServer();
  const port = await listen(server);
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function echoOnce(port) {
  const payload = randomBytes(64 * 1024);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => socket.end(payload));
    const chunks = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => (Buffer.concat(chunks).equals(payload) ? resolve() : reject(new Error('bytes differ'))));
  });
}

const echo = createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket));
const backendPort = await listen(echo);
const [listenPort, adminPort] = [await freePort(), await freePort()];
const config = join(dir, 'smoke.yaml');
writeFileSync(
  config,
  `workers: 1\nadmin: { listen: 127.0.0.1:${adminPort} }\nservices:\n  - name: smoke\n    listen: 127.0.0.1:${listenPort}\n    backends:\n      - address: 127.0.0.1:${backendPort}\n`,
);
proc = spawn(fulcrum, ['run', '-c', config], { stdio: ['ignore', 'pipe', 'inherit'] });
let out = '';
proc.stdout.setEncoding('utf8').on('data', (chunk) => (out += chunk));
proc.once('exit', (code, signal) => {
  if (!stopping) fail(`fulcrum run exited (${code ?? signal}):\n${out}`);
});
let stopping = false;
while (!out.includes('"msg":"listening"')) await new Promise((resolve) => setTimeout(resolve, 50));
for (let i = 0; i < 20; i++) await echoOnce(listenPort).catch((err) => fail(`connection ${i}: ${err.message}`));
stopping = true;
const exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
proc.kill('SIGTERM');
const code = await exited;
if (code !== 0) fail(`fulcrum exited ${code} after SIGTERM`);
clearTimeout(deadline);
echo.close();
console.log('proxy check: 20 connections x 64 KiB echoed byte for byte through the installed fulcrum; clean stop');
