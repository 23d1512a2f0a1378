// Who holds a listen address: the process (pid and command line) behind an
// EADDRINUSE, so a second Fulcrum on the same address says which one is in
// its way instead of silently joining its SO_REUSEPORT group (the engine's
// lock, native/engine/listener.h probe_exclusive_bind).
//
// Linux only: the socket's inode from /proc/net/{tcp,tcp6,udp,udp6}, then the
// process whose /proc/PID/fd/* links to socket:[inode]. Processes of other
// users are only visible to root; then nothing is named (undefined).
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { isIPv4 } from 'node:net';

export interface AddressHolder {
  pid: number;
  /** The command line, arguments joined by spaces (at most COMMAND_CHARS). */
  command: string;
}

const COMMAND_CHARS = 200;
/** /proc/net/tcp's state of a listening socket. */
const TCP_LISTEN = '0A';

/**
 * The processes holding a `protocol` socket bound to host:port (or to the
 * wildcard address of that port, which also takes host). Empty when none is
 * visible.
 */
export function findAddressHolders(protocol: 'tcp' | 'udp', host: string, port: number): AddressHolder[] {
  const inodes = new Set<string>();
  const wanted = addressHex(host);
  for (const file of [`/proc/net/${protocol}`, `/proc/net/${protocol}6`]) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10) continue;
      const [local, state, inode] = [fields[1]!, fields[3]!, fields[9]!];
      if (protocol === 'tcp' && state !== TCP_LISTEN) continue;
      const [addressPart, portPart] = local.split(':');
      if (addressPart === undefined || portPart === undefined || parseInt(portPart, 16) !== port) continue;
      const wildcard = /^0+$/.test(addressPart);
      if (!wildcard && wanted !== undefined && !/^0+$/.test(wanted) && addressPart !== wanted) continue;
      if (inode !== '0') inodes.add(inode);
    }
  }
  if (inodes.size === 0) return [];
  const holders: AddressHolder[] = [];
  for (const entry of safeReaddir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const holds = safeReaddir(`/proc/${pid}/fd`).some((fd) => {
      const target = safeReadlink(`/proc/${pid}/fd/${fd}`);
      const match = target && /^socket:\[(\d+)\]$/.exec(target);
      return Boolean(match && inodes.has(match[1]!));
    });
    if (holds) holders.push({ pid, command: commandLine(pid) });
  }
  return holders;
}

/** "pid 123 (node dist/cli.js run -c a.yaml)", joined by ", "; "" for none. */
export function describeHolders(holders: readonly AddressHolder[]): string {
  return holders.map((h) => `pid ${h.pid} (${h.command})`).join(', ');
}

/** The address as /proc/net prints it: IPv4 as one little-endian word, IPv6 as four. */
function addressHex(host: string): string | undefined {
  if (isIPv4(host)) return wordHex(host.split('.').map(Number));
  const bytes = ipv6Bytes(host);
  if (bytes === undefined) return undefined;
  let out = '';
  for (let i = 0; i < 16; i += 4) out += wordHex(bytes.slice(i, i + 4));
  return out;
}

/** Four bytes in network order as the kernel prints the u32 on a little-endian host. */
function wordHex(bytes: number[]): string {
  return [...bytes].reverse().map((b) => b.toString(16).padStart(2, '0')).join('').toUpperCase();
}

function ipv6Bytes(host: string): number[] | undefined {
  const [head, tail] = host.includes('::') ? host.split('::') : [host, undefined];
  const parse = (part: string | undefined): number[] => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const first = parse(head);
  const last = parse(tail);
  if ([...first, ...last].some((g) => Number.isNaN(g))) return undefined;
  const groups = tail === undefined ? first : [...first, ...new Array<number>(8 - first.length - last.length).fill(0), ...last];
  if (groups.length !== 8) return undefined;
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

function commandLine(pid: number): string {
  try {
    const text = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
    return text.length > COMMAND_CHARS ? `${text.slice(0, COMMAND_CHARS)}...` : text;
  } catch {
    return '?';
  }
}

function safeReaddir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

function safeReadlink(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}
