// HAProxy and nginx as the PROXY protocol peers of Fulcrum in tests: as
// backends that read Fulcrum's header and answer with the client address they
// were told (an HTTP reply of one line), and HAProxy as a load balancer in
// front of Fulcrum that sends one. Each runs in the foreground as a child
// process, killed by its PID at teardown.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { freePort } from './backends.js';
import { delay, HOST, openConn } from './traffic.js';

export interface Peer {
  port: number;
  pid: number;
}

/** Start `cmd args` (which must listen on `port`), wait until it accepts; killed at teardown. */
async function startPeer(t: Test, name: string, cmd: string, args: string[], port: number): Promise<Peer> {
  // Not the sanitizer runtime the ASan run preloads for Node: these are not our code.
  const { LD_PRELOAD: _preload, ...env } = process.env;
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4096)));
  let exited = false;
  child.once('exit', () => (exited = true));
  t.teardown(() => {
    if (!exited && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) throw new Error(`${name} exited: ${stderr}`);
    try {
      const conn = await openConn(t, port, 1_000);
      conn.socket.destroy();
      return { port, pid: child.pid! };
    } catch {
      if (Date.now() > deadline) throw new Error(`${name} did not listen on ${port} within 10s: ${stderr}`);
      await delay(50);
    }
  }
}

function scratch(t: Test, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const HAPROXY_DEFAULTS = ['defaults', '  timeout connect 2s', '  timeout client 10s', '  timeout server 10s'];

/** HAProxy reading a PROXY header (`accept-proxy`, v1 or v2) and answering any HTTP request with "src src_port dst dst_port". */
export async function haproxyReporter(t: Test): Promise<Peer> {
  const port = await freePort();
  const dir = scratch(t, 'fulcrum-haproxy-');
  const config = [
    ...HAPROXY_DEFAULTS,
    'frontend report',
    '  mode http',
    `  bind ${HOST}:${port} accept-proxy`,
    '  http-request return status 200 content-type text/plain lf-string "%[src] %[src_port] %[dst] %[dst_port]\\n"',
    '',
  ].join('\n');
  writeFileSync(join(dir, 'haproxy.cfg'), config);
  return startPeer(t, 'haproxy', 'haproxy', ['-f', join(dir, 'haproxy.cfg'), '-db'], port);
}

/** HAProxy in TCP mode in front of `target`, writing a PROXY v2 header to it (`send-proxy-v2`). */
export async function haproxyFront(t: Test, target: number, version: 'v1' | 'v2' = 'v2'): Promise<Peer> {
  const port = await freePort();
  const dir = scratch(t, 'fulcrum-haproxy-');
  const config = [
    ...HAPROXY_DEFAULTS,
    'listen front',
    '  mode tcp',
    `  bind ${HOST}:${port}`,
    `  server fulcrum ${HOST}:${target} ${version === 'v2' ? 'send-proxy-v2' : 'send-proxy'}`,
    '',
  ].join('\n');
  writeFileSync(join(dir, 'haproxy.cfg'), config);
  return startPeer(t, 'haproxy', 'haproxy', ['-f', join(dir, 'haproxy.cfg'), '-db'], port);
}

/** nginx (http) listening with `proxy_protocol` and answering "addr port server_addr server_port" from the header. */
export async function nginxReporter(t: Test): Promise<Peer> {
  const port = await freePort();
  const dir = scratch(t, 'fulcrum-nginx-');
  const config = `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr error;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen ${HOST}:${port} proxy_protocol;
    location / {
      default_type text/plain;
      return 200 "$proxy_protocol_addr $proxy_protocol_port $proxy_protocol_server_addr $proxy_protocol_server_port\\n";
    }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), config);
  return startPeer(t, 'nginx', 'nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], port);
}

/** Send an HTTP/1.0 GET through `port` from `from`; resolves the last line of the reply's body. */
export async function askReporter(t: Test, port: number, from?: string): Promise<{ reply: string; localPort: number }> {
  const conn = await openConn(t, port, 5_000, from);
  const localPort = conn.socket.localPort!;
  await conn.write('GET / HTTP/1.0\r\nHost: test\r\n\r\n');
  await conn.waitEnd(10_000);
  const text = (await conn.read(conn.buffered)).toString('utf8');
  const lines = text.trimEnd().split('\r\n');
  return { reply: lines.at(-1)!.split('\n').at(-1)!, localPort };
}
