// The validated configuration: what `loadConfig` returns once the YAML has
// passed every check. Durations are milliseconds, addresses are parsed.
// Keys are camelCase here; the YAML spells them in snake_case.
import type { ConnectionLogConfig } from './connection-log.js';
import type { HealthCheckConfig, PassiveHealthConfig } from './health-types.js';
import type { RawConfig, RawService, RawServiceSticky } from './raw-types.js';

// The enums are the schema's (through the generated raw-types.ts).
export type Protocol = RawService['protocol'];
export type Balance = RawService['balance'];

/** The PROXY protocol header written to a backend: none, version 1 (text) or 2 (binary). */
export type SendProxy = RawService['send_proxy'];

/** accept_proxy: clients (a proxy or cloud load balancer in front) start with a PROXY protocol header. */
export interface AcceptProxyConfig {
  /** Canonical CIDR prefixes of the peers that must send a header; undefined: every peer must. */
  from: string[] | undefined;
  /** A header not complete within this long closes the connection. Default 3s. */
  timeoutMs: number;
}

/** client_limits: per source address. rate/burst count new connections (tcp) or datagrams (udp). */
export interface ClientLimitsConfig {
  /** Connections open at once per source (tcp); 0 none. */
  maxConnections: number;
  /** Per second per source; 0 none. */
  rate: number;
  /** The token bucket's size; default the rate. */
  burst: number;
  /** Sources tracked at once. Default 65536. */
  tableSize: number;
}

/** What `balance: maglev` hashes: the whole 5-tuple, or the client address only. */
export type HashKey = RawService['hash_key'];

/** A parsed `host:port` or `[v6]:port`. `host` is a numeric IP literal. */
export interface Endpoint {
  host: string;
  port: number;
  family: 4 | 6;
  /** Canonical text form: `127.0.0.1:80` or `[::1]:80`. */
  text: string;
}

export interface BackendConfig {
  address: Endpoint;
  /** 0..256, default 1. 0 takes no new connections (HAProxy's weight 0). */
  weight: number;
  /** Takes traffic only while no primary (non-backup) backend is up. Default false. */
  backup: boolean;
  /** Connections at once, counted over every worker; 0 (the default) is no limit. */
  maxConnections: number;
  /** Ramp after coming back up: the backend's own `slow_start`, else the service's; 0 is none. */
  slowStartMs: number;
  /** The active check (the service's `health_check` with this backend's keys over it); absent: none, always up. */
  healthCheck?: HealthCheckConfig;
  /** The backend's own send_proxy, else the service's; default none. */
  sendProxy: SendProxy;
  /** Where it came from; absent: the config file (see src/discovery/origin.ts). */
  origin?: BackendOrigin;
}

/** Where a running backend came from: the config file, the admin API, or a DNS name of the file. */
export type BackendOrigin = { kind: 'file' } | { kind: 'api' } | { kind: 'dns'; name: string };

/**
 * A backend entry of the file that names DNS records instead of an address:
 * `address: NAME:PORT` (every A/AAAA record) or `srv: NAME` (every target of
 * the SRV record). Each address an answer gives becomes a backend with
 * `template`'s settings (src/discovery/).
 */
export interface DiscoveryEntry {
  kind: 'host' | 'srv';
  /** The host name, or the SRV record name (lower case, no trailing dot). */
  name: string;
  /** host: the port written; srv: 0 (each target's port comes from the record). */
  port: number;
  /** As logs, status and metrics name it: `db.internal:5432` or `srv:_pg._tcp.example`. */
  label: string;
  /** The settings each resolved backend gets. */
  template: Omit<BackendConfig, 'address' | 'origin'>;
  /** srv: the file wrote a weight (it wins over the records'). */
  weightWritten: boolean;
}

/** The `resolvers:` block: how backend names are resolved. */
export interface ResolversConfig {
  /** `ip` or `ip:port` as node's dns.Resolver.setServers() takes them; undefined: the system's. */
  servers: string[] | undefined;
  timeoutMs: number;
  tries: number;
  minTtlMs: number;
  maxTtlMs: number;
  retryMs: number;
}

/** Connections waiting for a backend with room (every candidate at max_connections). */
export interface QueueConfig {
  /** How many may wait at once over every worker; 0 refuses at once. Default 1024. */
  size: number;
  /** How long one may wait before it is refused; default the service's connect timeout. */
  timeoutMs: number;
}

/** Session persistence: a client keeps its backend while it keeps coming back. */
export interface StickyConfig {
  key: RawServiceSticky['key'];
  /** An entry expires this long after the client's last new connection. Default 30m. */
  timeoutMs: number;
  /** Entries in the table (clients remembered at once). Default 65536. */
  size: number;
}

export interface ServiceTimeouts {
  /** Backend connect timeout, default 2s. */
  connectMs: number;
  /** Close a connection with no traffic in either direction for this long; 0 never (tcp's default). udp: default 30s, never 0. */
  idleMs: number;
}

/** TCP keepalive on the client's and the backend's socket (`tcp_keepalive:`). */
export interface TcpKeepaliveConfig {
  /** Quiet time before the first probe. Default 60s. */
  idleMs: number;
  /** Between unanswered probes. Default 15s. */
  intervalMs: number;
  /** Unanswered probes that end the connection. Default 8. */
  count: number;
}

export interface ServiceConfig {
  name: string;
  protocol: Protocol;
  listen: Endpoint;
  /** An IPv6 listen address takes IPv6 clients only; false (the default): [::] is dual-stack. Always false for IPv4. */
  ipv6Only: boolean;
  balance: Balance;
  backends: BackendConfig[];
  /** Backend entries that name DNS records (resolved at run time into more backends); absent: none. */
  discovery?: DiscoveryEntry[];
  /** The service as the file wrote it, without its backends: a backend added through the
   * admin API is validated as if written here (src/discovery/api-backend.ts). */
  written?: Record<string, unknown>;
  timeouts: ServiceTimeouts;
  /** undefined: `tcp_keepalive: off`. */
  tcpKeepalive: TcpKeepaliveConfig | undefined;
  /** Extra connect attempts on other backends after the first fails, default 2. */
  retries: number;
  /** maglev only (default five_tuple). */
  hashKey: HashKey;
  /** maglev only: entries in the lookup table, a prime; default 65537. */
  maglevTableSize: number;
  queue: QueueConfig;
  sticky: StickyConfig | undefined;
  /** A drained or removed backend's open connections are closed after this long; 0 (the default): never, they continue until they end. */
  drainTimeoutMs: number;
  /** Passive health (outlier ejection on failed connects); absent: off. */
  passive?: PassiveHealthConfig;
  /** protocol: udp only (defaults otherwise): flow table settings. */
  udp: UdpConfig;
  /** Absent: clients are who accept() says. */
  acceptProxy: AcceptProxyConfig | undefined;
  /** ACL: canonical CIDR prefixes; the longest one containing the client decides, deny on a tie. */
  allow: string[];
  deny: string[];
  clientLimits: ClientLimitsConfig | undefined;
  /** client: connect to backends from the client's own address (IP_TRANSPARENT). Default auto. */
  source: RawService['source'];
  /** PostgreSQL cancel requests: broadcast to every backend, off, or auto (broadcast with a postgres health check). */
  postgresCancel: RawService['postgres_cancel'];
  /** How established connections' bytes move: user space, the kernel relay (sockmap), or auto. */
  relay: RawService['relay'];
}

/** Datagram settings of a protocol: udp service. */
export interface UdpConfig {
  /** Flows at once over every worker; the longest idle is evicted to make room. Default 16384. */
  maxFlows: number;
  /** A flow ends after this many replies (request/response protocols); 0, the default, only when idle. */
  responses: number;
  /** Kernel (tcx BPF NAT), user (the relay) or auto (kernel where it attaches). Default auto. */
  datapath: 'auto' | 'kernel' | 'user';
  /** The kernel datapath's NAT source ports (udp.nat_ports). */
  natPorts: { first: number; count: number };
}

/** The admin HTTP server (API, /metrics, status page). */
export interface AdminConfig {
  /** Default 127.0.0.1:8406 (the schema's default). */
  listen: Endpoint;
  /** Bearer token every request must carry; required when `listen` is not loopback. Never logged. */
  token: string | undefined;
  /** Absolute path the token was read from, when it came from admin.token_file. */
  tokenFile: string | undefined;
  /** Admin connections open at once; one more is closed when accepted. Default 256. */
  maxConnections: number;
}

export interface FulcrumConfig {
  /** Absolute path of the file this came from. */
  file: string;
  /** The file's text as loaded (`fulcrum config dump` starts from it); absent in configs built by hand. */
  text?: string;
  /** Data-plane worker threads; `auto` (the default) resolves to the CPU count. */
  workers: number;
  /** On SIGINT/SIGTERM, how long open connections may finish, default 30s. */
  drainTimeoutMs: number;
  log: { level: RawConfig['log']['level']; format: RawConfig['log']['format'] };
  /** The `connection_log:` block: one record per connection or flow (src/config/connection-log.ts). */
  connectionLog: ConnectionLogConfig;
  admin: AdminConfig;
  services: ServiceConfig[];
  /** The `resolvers:` block (defaults filled in); absent in configs built by hand. */
  resolvers?: ResolversConfig;
  /** The `ha:` block, when this node is one of a VRRP pair. */
  ha?: HaConfig;
  /** The `announce:` block: VIPs announced over BGP through BIRD (ECMP, src/announce/). */
  announce?: AnnounceConfig;
  /** The `sync:` block: session state shared with peer nodes (src/sync/). */
  sync?: SyncConfig;
}

/** A virtual IP of the `ha:` block. */
export interface HaVirtualIp {
  /** 10.200.0.100 */
  address: string;
  /** 10.200.0.100/24 (a bare address gets /32). */
  cidr: string;
}

/** High availability: one VRRPv3 virtual router (src/ha/). */
export interface HaConfig {
  interface: string;
  vrid: number;
  /** 1..254; the higher one is Master. */
  priority: number;
  virtualIps: HaVirtualIp[];
  /** 10ms steps, 10ms..40950ms (VRRPv3's 12-bit centiseconds). Default 1s. */
  advertIntervalMs: number;
  preempt: boolean;
  preemptDelayMs: number;
  /** Empty: multicast to 224.0.0.18. */
  unicastPeers: string[];
  /** Source of our adverts; default the interface's first IPv4 address that is not a VIP. */
  sourceAddress: string | undefined;
  /** Absolute path, run as SCRIPT INSTANCE name STATE priority. */
  notify: string | undefined;
  garp: { repeat: number; delayMs: number; refreshMs: number };
  track: { services: string[]; weight: number };
}

/** A BGP neighbor of the `announce:` block. */
export interface AnnounceNeighbor {
  address: string;
  as: number;
}

/** ECMP: VIPs announced over BGP through BIRD while this node can serve them (src/announce/). */
export interface AnnounceConfig {
  localAddress: string;
  localAs: number;
  /** Default: localAddress. */
  routerId: string;
  neighbors: AnnounceNeighbor[];
  /** IPv4 addresses, announced as /32. */
  vips: string[];
  /** Where the VIPs are added as /32 addresses; default lo. */
  interface: string;
  bfd: boolean;
  bfdIntervalMs: number;
  bfdMultiplier: number;
  holdTimeMs: number;
  /** On stop: listeners stay open this long after the withdrawal. */
  withdrawGraceMs: number;
  track: { services: string[] };
  bird: {
    /** true: Fulcrum starts and owns BIRD; false: an existing BIRD includes `config`. */
    run: boolean;
    config: string;
    socket: string;
    bird: string;
    birdc: string;
  };
}

/** Session state shared with peer nodes (src/sync/). */
export interface SyncConfig {
  listen: Endpoint;
  peers: Endpoint[];
  /** The shared secret (never logged). */
  key: Buffer;
  /** Absolute path it was read from. */
  keyFile: string;
  intervalMs: number;
  maxSkewMs: number;
}
