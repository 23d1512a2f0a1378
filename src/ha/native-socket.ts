// The addon's VrrpSocket (native/addon/ha_socket.h), typed.
import { loadNative } from '../engine/native.js';

export interface NativeVrrpSocket {
  /** Returns bytes sent; throws Error{code} (EAGAIN, ENETUNREACH...). */
  send(destination: string, source: string, payload: Buffer): number;
  /** One gratuitous ARP for `ip` out of the interface. */
  garp(ip: string): void;
  readonly mac: string;
  /** rtnetlink address add/del on the interface: 0 or -errno. */
  setAddress(add: boolean, ip: string, prefixLength: number): number;
  /** Idempotent; joins the reader thread. */
  close(): void;
}

export interface VrrpSocketOptions {
  interface: string;
  /** Join 224.0.0.18 (multicast mode); unicast mode does not. */
  joinGroup: boolean;
  /** Whole IPv4 datagrams, in arrival order; `dropped`: overflowed the native queue since the last batch. */
  onPackets(packets: Buffer[], dropped: number): void;
}

type VrrpSocketClass = new (options: VrrpSocketOptions) => NativeVrrpSocket;

/** Open the raw VRRP socket and the ARP socket on an interface (root, or CAP_NET_RAW). */
export function openVrrpSocket(options: VrrpSocketOptions): NativeVrrpSocket {
  const addon = loadNative() as unknown as { VrrpSocket: VrrpSocketClass };
  return new addon.VrrpSocket(options);
}
