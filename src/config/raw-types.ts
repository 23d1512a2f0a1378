// Generated from config/fulcrum.schema.json by scripts/generate-config-types.mjs: do not edit.
// `npm run generate:config-types` rewrites it; a unit test fails while it is stale.
//
// The config as YAML spells it (snake_case) once the schema accepted it and
// filled in its defaults: a key with a default is always present. Paths in
// the constants are keys from the top level or from a definition (service,
// backend, healthCheck), `[]` for a list item.

export interface RawConfig {
  /** Data-plane worker threads, each with its own event loop and listening sockets. `auto` (the default) uses one per CPU (os.availableParallelism()). */
  workers: 'auto' | number;
  /** On SIGINT/SIGTERM Fulcrum stops accepting, then lets open connections finish for at most this long before closing them. */
  drain_timeout: string;
  /** Logging on stdout: pino JSON lines with level names and ISO 8601 UTC times, or one readable text line per event. */
  log: RawLog;
  /** One record per TCP connection and per UDP flow when it ends (client, service, backend, queue/connect/total times, bytes each way, connect attempts, and how it ended: the termination states in the README's "Connection log"), written by the data plane without JavaScript per connection. */
  connection_log: RawConnectionLog;
  /** High availability: this node is one of a pair sharing virtual IPs through VRRPv3 (RFC 5798); keepalived can be the other. */
  ha?: RawHa;
  /** Active-active behind a router's ECMP: announce virtual IPs over BGP through BIRD 2 (Debian bird2) while this node can serve them, so the router spreads each VIP over every node that announces it. */
  announce?: RawAnnounce;
  /** Share session state with peer nodes (a VRRP pair or an ECMP group), as HAProxy's peers and conntrackd do: sticky-table entries and UDP flow-to-backend assignments are sent to every peer over UDP, authenticated with HMAC-SHA256, so after a failover or an ECMP move a client keeps its backend. */
  sync?: RawSync;
  /** The admin HTTP API, Prometheus /metrics and the status page at /. */
  admin: RawAdmin;
  /** How backend names (address: NAME:PORT, srv:) are resolved: the DNS servers, the query timeout, and the floor and ceiling of the re-resolve interval. */
  resolvers: RawResolvers;
  /** The load-balanced services: each listens on one address and relays every connection to one of its backends. */
  services: RawService[];
}

export interface RawLog {
  /** Lowest level written. Default info. */
  level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
  /** json: one JSON object per line ("level":"warn", "time":"2026-12-07T16:30:00.123Z"), for log shippers. text: one readable line per event (time, level, message, then key=value fields), for a terminal or journald. */
  format: 'json' | 'text';
}

export interface RawConnectionLog {
  /** Where records go: `stdout` (the default, beside the process log), `off`, `syslog` (RFC 5424 datagrams; see syslog.address), or a file path (opened for append; reopened on SIGUSR1 or `fulcrum reopen-logs`, for logrotate). */
  output: string;
  /** json: one JSON object a line (or a syslog message). text: one human line, in the spirit of HAProxy's tcplog. */
  format: 'json' | 'text';
  /** The share of records written, from 0 to 1 (0.01: one in a hundred, drawn at random). */
  sample: number;
  /** Records written per second at most; the rest are counted (fulcrum_connection_log_records_total{result="over_cap"}) and never delay the data path. 0: no cap. */
  max_per_second: number;
  /** Also write an interim record ("event": "interim") of every open TCP connection this often, so a connection that lasts a week is still seen (as Envoy's access_log_flush_interval). 0 (the default): only when it ends. */
  interval: string | number;
  /** output: syslog: where the datagrams go and how they are labelled. */
  syslog: RawConnectionLogSyslog;
}

export interface RawConnectionLogSyslog {
  /** A unix datagram socket path (default /dev/log), or host:port for UDP (a numeric IP address; port 514 usually). */
  address: string;
  /** The syslog facility. Default local0. */
  facility: 'kern' | 'user' | 'mail' | 'daemon' | 'auth' | 'syslog' | 'lpr' | 'news' | 'uucp' | 'cron' | 'authpriv' | 'ftp' | 'local0' | 'local1' | 'local2' | 'local3' | 'local4' | 'local5' | 'local6' | 'local7';
  /** The APP-NAME of each message. Default fulcrum. */
  tag: string;
}

export interface RawHa {
  /** The interface adverts go out of and the virtual IPs are added to, e.g. eth0. */
  interface: string;
  /** Virtual router ID, 1 to 255: the same on both nodes, unique on the link. */
  vrid: number;
  /** 1 to 254; the node with the higher priority is Master. */
  priority: number;
  /** IPv4 addresses with an optional prefix length (10.200.0.100/24; /32 when absent) that move with mastership. */
  virtual_ips: string[];
  /** How often the Master advertises, in 10ms steps from 10ms to 40.95s (VRRPv3). */
  advert_interval: string;
  /** Take mastership back from a lower-priority Master. */
  preempt: boolean;
  /** With preempt, wait this long after first hearing a lower-priority Master before taking over. */
  preempt_delay: string | number;
  /** Send adverts to these IPv4 addresses instead of multicast 224.0.0.18, and accept adverts only from them. */
  unicast_peers: string[];
  /** Source address of our adverts. Default: the interface's first IPv4 address that is not a virtual IP. */
  source_address?: string;
  /** Absolute path of a program run on each state change with keepalived's arguments: INSTANCE VI_<vrid> MASTER|BACKUP|FAULT|STOP <priority>. */
  notify?: string;
  /** Gratuitous ARPs sent per virtual IP on becoming Master (keepalived's garp_master_repeat). */
  garp_repeat: number;
  /** A second round of gratuitous ARPs this long after becoming Master (keepalived's garp_master_delay); 0 for none. */
  garp_delay: string | number;
  /** While Master, repeat the gratuitous ARPs this often (keepalived's garp_master_refresh); 0 for never. */
  garp_refresh: string | number;
  /** What makes this node unable to serve: the engine stopped (always), or a listed service with no backend up. */
  track: RawHaTrack;
}

export interface RawHaTrack {
  /** Services that need at least one backend up. */
  services: string[];
  /** 0: a node that cannot serve enters the Fault state and gives up Master at once. */
  weight: number;
}

export interface RawAnnounce {
  /** This node's IPv4 address towards the router(s): the BGP session's source and the next hop the router sends VIP traffic to. */
  local_address: string;
  /** This node's autonomous system number (1 to 4294967295); the same on every node of the group, so the router sees equal paths. */
  local_as: number;
  /** BGP router ID (an IPv4 address, unique per node). */
  router_id?: string;
  /** The BGP peers (routers) the VIPs are announced to. */
  neighbors: RawAnnounceNeighbor[];
  /** IPv4 addresses announced as /32 routes. Each must be the listen address of at least one service (or a service must listen on 0.0.0.0). */
  vips: string[];
  /** Where the VIPs are added as /32 addresses so this node accepts their traffic (kept while draining, removed at exit). */
  interface: string;
  /** Run BFD on the BGP sessions, so a router drops a dead node's routes within bfd_interval x bfd_multiplier instead of the BGP hold time. */
  bfd: boolean;
  /** BFD transmit and receive interval, 10ms to 10s. */
  bfd_interval: string;
  /** BFD packets missed before the session is down, 2 to 16. */
  bfd_multiplier: number;
  /** BGP hold time, 3s to 65535s (keepalives every third of it). */
  hold_time: string;
  /** On SIGINT/SIGTERM the VIPs are withdrawn first and the listeners stay open this long, so connections the router still sends here during its update are served; then the drain starts. 0 for none, at most 60s. */
  withdraw_grace: string | number;
  /** Services that must have a backend up for any VIP to be announced (beyond each VIP's own services), as ha.track.services. */
  track: RawAnnounceTrack;
  /** The BIRD instance Fulcrum drives. */
  bird: RawAnnounceBird;
}

export interface RawAnnounceNeighbor {
  /** The router's IPv4 address on the shared link. */
  address: string;
  /** The router's AS number (1 to 4294967295); equal to local_as makes an iBGP session. */
  as: number;
}

export interface RawAnnounceTrack {
  /** Default none. */
  services: string[];
}

export interface RawAnnounceBird {
  /** true: Fulcrum starts BIRD with its own config, socket and pid file, and stops it at exit (it is also stopped if Fulcrum is killed). false: drive an existing BIRD at `socket` whose config includes the file `config` (Fulcrum writes it and runs birdc configure). */
  run: boolean;
  /** Absolute path of the BIRD config Fulcrum writes. */
  config?: string;
  /** Absolute path of BIRD's control socket. Default /run/fulcrum/bird-<local_address>.ctl. */
  socket?: string;
  /** The bird program (bird.run: true). Default bird, looked up in PATH. */
  bird: string;
  /** The birdc program. Default birdc, looked up in PATH. */
  birdc: string;
}

export interface RawSync {
  /** IPv4 address and UDP port this node receives sync messages on, e.g. 10.0.0.1:7480; its address is also the source of what it sends. */
  listen: string;
  /** The other nodes' sync addresses (IPv4:port). */
  peers: string[];
  /** File holding the shared secret (at least 16 bytes once surrounding whitespace is trimmed), the same on every node; relative to the config file. */
  key_file: string;
  /** How often what changed is sent, 10ms to 10s. */
  interval: string;
  /** A message whose send time is further than this from this node's clock is rejected (bounds replay after a restart). 1s to 5m. */
  max_skew: string;
}

export interface RawAdmin {
  /** Address of the admin HTTP server: host:port or [v6]:port. */
  listen: string;
  /** Bearer token every request must carry (Authorization: Bearer TOKEN). 16 to 512 printable characters. */
  token?: string;
  /** File holding the bearer token (surrounding whitespace is trimmed); a relative path is relative to the config file. */
  token_file?: string;
  /** Admin connections open at once: 1 to 65536. */
  max_connections: number;
}

export interface RawResolvers {
  /** DNS servers to ask, as IP or IP:port ([v6]:port), tried in order. */
  servers?: string[];
  /** How long one query waits for an answer before it is sent again, 10ms to 30s. */
  timeout: string;
  /** Queries sent to each server before the resolution fails: 1 to 10. */
  tries: number;
  /** Floor of the re-resolve interval: a record with a smaller TTL (or TTL 0) is asked again after this long. 100ms to 1h. */
  min_ttl: string;
  /** Ceiling of the re-resolve interval, 100ms to 24h, at least min_ttl. */
  max_ttl: string;
  /** After a failed resolution, how long until the next try (the last good answer stays in force meanwhile), 100ms to 1h. */
  retry: string;
}

export interface RawService {
  /** Unique name used in logs, metrics and the admin API: 1 to 64 characters of A-Z a-z 0-9 _ . - */
  name: string;
  /** Transport protocol. tcp: connections, relayed with splice(). udp: datagrams, in flows keyed by the 5-tuple (client address and port, listen address and port), each flow pinned to one backend until it is idle for timeouts.idle (default 30s for udp); balance defaults to maglev for udp. */
  protocol: 'tcp' | 'udp';
  /** Address to accept client connections on: host:port or [v6]:port. host is an IP address, `localhost` (127.0.0.1), `*` (0.0.0.0, every IPv4 address) or `[::]` (every IPv6 address). */
  listen: string;
  /** With an IPv6 listen address: take IPv6 clients only (IPV6_V6ONLY). */
  ipv6_only: boolean;
  /** The load-balancing algorithm: how a backend is picked for each new connection, among the backends that are up, not at max_connections and not weight 0 (backups only while no primary is available). */
  balance: 'roundrobin' | 'weighted' | 'leastconn' | 'random' | 'source' | 'maglev' | 'least_time' | 'least_bandwidth' | 'first';
  /** With balance: maglev only: what is hashed. five_tuple: protocol, client address and port, service address and port, so each connection lands anywhere (spread) but a given flow always the same way. source: the client IP address only, so every connection of a client reaches the same backend. */
  hash_key: 'five_tuple' | 'source';
  /** With balance: maglev only: entries in the Maglev lookup table, a prime from 251 to 4194301, larger than the number of backends. */
  maglev_table_size: number;
  /** Servers the connections go to. At least one; no address twice. */
  backends: RawBackend[];
  /** Per-connection timeouts. */
  timeouts: RawServiceTimeouts;
  /** protocol: tcp only: TCP keepalive on both sockets of a connection, the client's and the backend's, so a peer that is gone (host down, cable cut, a NAT or firewall that forgot the connection) is found and the other side closed, while a healthy idle connection is never cut. */
  tcp_keepalive: 'off' | false | RawServiceTcpKeepalive;
  /** When connecting to a backend fails, how many other backends to try before closing the client connection: 0 to 16. */
  retries: number;
  /** When a backend comes back up (after being down, drained or in maintenance), its effective weight ramps linearly from nearly 0 to its weight over this long, so a cold server is not flooded at once. */
  slow_start: string | number;
  /** When every candidate backend is at its max_connections, a new connection waits here until one has room. */
  queue: RawServiceQueue;
  /** Session persistence: remember which backend each client was sent to, and send its next connections there while that backend is available and has room, whatever the algorithm would pick (also when other backends are added or removed); otherwise the client is balanced anew and the new backend remembered. */
  sticky?: RawServiceSticky;
  /** A forced close, off by default: a backend set to drain, or removed from the config by a reload, has its open connections closed once they have run this long after the drain began. */
  drain_timeout: string | number;
  /** The active health check of every backend of this service (a backend's own health_check overrides keys of it). */
  health_check?: RawHealthCheck;
  /** Passive health (Envoy's outlier detection): after consecutive_failures failed connects in a row to a backend, it is ejected (takes no new connections) for base_ejection times the number of times it was ejected, at most max_ejection; never more than max_ejection_percent of the service's backends at once. */
  passive?: RawServicePassive;
  /** protocol: tcp only. Clients start with a PROXY protocol header (version 1 or 2, told apart by its signature; v2 TLVs are skipped), as sent by HAProxy's send-proxy, nginx's proxy_protocol or a cloud network load balancer in front of Fulcrum. */
  accept_proxy: boolean;
  /** With accept_proxy: the peers (CIDR prefixes, IPv4 or IPv6) that must send a header. */
  accept_proxy_from?: string[];
  /** With accept_proxy: how long a client has to send its whole header. */
  accept_proxy_timeout: string;
  /** protocol: tcp only. Write a PROXY protocol header naming the client and the address it connected to as the first bytes to every backend of this service (a backend's own send_proxy overrides it): v1 (text, what nginx's proxy_protocol and most servers read) or v2 (binary, without TLVs). */
  send_proxy: 'none' | 'v1' | 'v2';
  /** protocol: tcp only. PostgreSQL cancel requests (psql's Ctrl-C, libpq's PQcancel, JDBC's Statement.cancel) arrive on a new connection, which balancing usually sends to another server than the one running the query. broadcast: a connection whose first bytes are a CancelRequest (16 bytes) is relayed as usual, and the request is also sent to every other backend of the service (up, drained, in maintenance or down), each over a short connection of its own; a server ignores a key it did not give out, so the one running the query cancels it, under any balance. */
  postgres_cancel: 'auto' | 'broadcast' | 'off';
  /** protocol: tcp only. How an established connection's bytes move between client and backend. user: the worker copies small messages and splices bulk streams (recv/send or splice per message). kernel: the kernel relay: both sockets go into a BPF sockmap and a stream-verdict program passes each side's bytes straight to the other inside the kernel, with no system call and no wake-up of Fulcrum per message (about half the latency of a user-space proxy for request/response traffic, but about a third of splice's throughput for bulk streams). auto: the kernel relay for connections that carry requests and replies (after their first few messages), user space for one-shot connections and bulk streams; a connection that turns bulk in the kernel (1 MiB within 20 ms one way) comes back to splice, exactly, with nothing lost. */
  relay: 'auto' | 'user' | 'kernel';
  /** protocol: tcp only. client: connect to the backend from the client's own IP address (transparent proxying, IP_TRANSPARENT), for backends that must see it and cannot read a PROXY header (PostgreSQL's pg_hba, MySQL grants). */
  source: 'auto' | 'client';
  /** Access control: CIDR prefixes (10.0.0.0/8, 2001:db8::/32, or a bare address) of the clients admitted. */
  allow?: string[];
  /** Access control: CIDR prefixes of clients refused (closed at accept for TCP, dropped for UDP, counted), unless a longer allow prefix contains them. */
  deny?: string[];
  /** Limits per client IP address, checked after allow/deny and before any backend is touched. */
  client_limits?: RawServiceClientLimits;
  /** protocol: udp only: where datagrams are relayed. kernel: flows are NATed by tcx BPF programs on the interfaces that carry the service (the one owning the listen address, and the one owning this host's address towards the backends), so datagrams never reach user space; the service fails to start when they cannot be attached. user: the relay in the worker threads (recvmmsg, one socket per flow). auto: kernel where it can be attached, otherwise user, with the reason in the log, `fulcrum check` and the status page. */
  datapath: 'auto' | 'kernel' | 'user';
  /** protocol: udp only: flows open at once, over all workers, from 1 to 16777216. */
  max_flows: number;
  /** protocol: udp only: datagram settings. */
  udp: RawServiceUdp;
}

export interface RawServiceTimeouts {
  /** How long a connect to a backend may take before Fulcrum tries another one (see retries). */
  connect: string;
  /** Close a connection after no bytes moved in either direction for this long; 0 for never. */
  idle: string | number;
}

export interface RawServiceTcpKeepalive {
  /** Time without traffic before the first probe (TCP_KEEPIDLE), in whole seconds (rounded up): 1s to 9h. */
  idle?: string;
  /** Time between unanswered probes (TCP_KEEPINTVL), in whole seconds (rounded up): 1s to 9h. */
  interval?: string;
  /** Unanswered probes that end the connection (TCP_KEEPCNT): 1 to 127. */
  count?: number;
}

export interface RawServiceQueue {
  /** How many connections may wait at once, over all workers: 0 to 1000000. */
  size: number;
  /** How long a connection may wait in the queue before it is refused. */
  timeout?: string;
}

export interface RawServiceSticky {
  /** What identifies a client. source: its IP address (the only key for now). */
  key: 'source';
  /** A client is forgotten this long after its last new connection. */
  timeout: string;
  /** How many clients are remembered at once: 1 to 16777216 (rounded up to a power of two). */
  size: number;
}

export interface RawServicePassive {
  /** Failed connects in a row that eject a backend: 1 to 1000. */
  consecutive_failures?: number;
  /** Length of the first ejection; the n-th lasts n times this. */
  base_ejection?: string;
  /** Longest ejection. At most 24h. */
  max_ejection?: string;
  /** Most backends of the service ejected at once, in percent of its backends: 0 to 100 (at least one backend when above 0). */
  max_ejection_percent?: number;
}

export interface RawServiceClientLimits {
  /** protocol: tcp only. Connections one client may have open at once, over all workers: 1 to 1000000. */
  max_connections?: number;
  /** protocol: tcp only. New connections per second one client may open (a token bucket refilled at this rate): 1 to 1000000. */
  connection_rate?: number;
  /** protocol: tcp only. How many new connections may come at once after a quiet spell (the bucket's size): 1 to 1000000. */
  connection_burst?: number;
  /** protocol: udp only. Datagrams per second one client may send (a token bucket): 1 to 1000000. */
  datagram_rate?: number;
  /** protocol: udp only. Datagrams that may come at once after a quiet spell: 1 to 1000000. */
  datagram_burst?: number;
  /** Clients tracked at once: 16 to 16777216 (rounded up to a power of two; 64 bytes each). */
  table_size: number;
}

export interface RawServiceUdp {
  /** The kernel datapath's source ports towards backends, FIRST-LAST: one per flow at once. */
  nat_ports: string;
  /** End a flow after this many replies from its backend, for request/response protocols (DNS, NTP, RADIUS), so one-shot queries do not fill the flow table; 0 ends flows only when idle. */
  responses: number;
}

export interface RawBackend {
  /** host:port or [v6]:port of the server. host is an IP address, `localhost`, or a DNS name: every A and AAAA record of the name becomes a backend with these settings, re-resolved at the records' TTL (see resolvers). */
  address?: string;
  /** A DNS SRV record name such as _postgres._tcp.service.consul: each target of the record becomes a backend with the record's port and, unless weight is written here, the record's weight (capped at 256); targets are resolved to every A/AAAA record. */
  srv?: string;
  /** This backend's share of new connections, relative to the other backends': an integer from 0 to 256. */
  weight: number;
  /** A backup takes new connections only while no primary (non-backup) backend of the service is available (every one down, drained, in maintenance or at weight 0; primaries that are only full make new connections queue instead); then the backups are balanced with the service's algorithm, and the primaries take over again as soon as one is back. */
  backup: boolean;
  /** Most connections this backend has open at once, over all workers: 1 to 1000000. */
  max_connections?: number;
  /** This backend's slow start, overriding the service's slow_start: when it comes back up, its effective weight ramps linearly from nearly 0 to its weight over this long. 0 turns it off for this backend. */
  slow_start?: string | number;
  /** protocol: tcp only. This backend's PROXY protocol header (none, v1 or v2), overriding the service's send_proxy. */
  send_proxy?: 'none' | 'v1' | 'v2';
  /** Overrides keys of the service's health_check for this backend (e.g. another port or role), or gives this backend a check when the service has none. `type: none` turns the check off for this backend. */
  health_check?: RawHealthCheck;
}

export interface RawHealthCheck {
  /** tcp: the connect succeeds. send_expect: send `send`, the reply contains `expect`. http: GET `path` answers with a status in `expect_status`. udp: a datagram `send` gets a reply (containing `expect` when set). postgres: the startup protocol answers; with `user`, logs in and reads pg_is_in_recovery(). mysql: the server greeting; with `user`, logs in and reads @@read_only. redis: PING answers PONG, and ROLE gives the node's role. none: no active check (for one backend). */
  type?: 'tcp' | 'send_expect' | 'http' | 'udp' | 'postgres' | 'mysql' | 'redis' | 'none';
  /** Time between checks while the backend's state is settled. */
  interval?: string;
  /** Time between checks while the backend is changing state (a check failed while up, or passed while down), as HAProxy's fastinter. */
  fast_interval?: string;
  /** Hard bound on one check, connect included; at most the interval. */
  timeout?: string;
  /** Consecutive passing checks that bring a down backend up: 1 to 100. */
  rise?: number;
  /** Consecutive failing checks that take an up backend down: 1 to 100. */
  fall?: number;
  /** Each wait is drawn from within this share of itself (0.1: ±10%), so the checks of many backends do not line up: 0 to 0.5. */
  jitter?: number;
  /** Port to check, when not the backend's own: 1 to 65535. */
  port?: number;
  /** send_expect, udp: text sent (YAML escapes such as \r\n apply). */
  send?: string;
  /** send_expect, udp: bytes sent, in hex (spaces allowed). */
  send_hex?: string;
  /** send_expect, udp: text the reply must contain. http: text the response after the status line (headers and body as sent) must contain. */
  expect?: string;
  /** send_expect, udp, http: bytes the reply must contain, in hex. */
  expect_hex?: string;
  /** send_expect, udp, http: a regular expression (JavaScript syntax) the reply's text must match. */
  expect_regex?: string;
  /** http: the path requested. Default /. */
  path?: string;
  /** http: the Host header. Default the backend's address. */
  host?: string;
  /** http: the statuses that pass, one or a list. */
  expect_status?: number | number[];
  /** postgres, mysql, redis: which node passes. primary: a PostgreSQL server not in recovery, a MySQL/MariaDB server with read_only off, a Redis master. replica: the opposite (a Redis replica only while its link to the master is up). any: every node that answers. primary and replica need `user` for postgres and mysql. */
  role?: 'primary' | 'replica' | 'any';
  /** postgres, mysql: the user the check logs in as (it needs no privileges). redis: the ACL user, with a password. */
  user?: string;
  /** postgres, mysql: the database connected to (postgres default: the user's name; mysql: none). */
  database?: string;
  /** postgres, mysql, redis: the name of the environment variable holding the password. */
  password_env?: string;
  /** postgres, mysql, redis: a file holding the password (one trailing newline is ignored), read at each check. */
  password_file?: string;
}

/** Every enum of the schema, by path. */
export const SCHEMA_ENUMS = {
  'backend.send_proxy': ['none', 'v1', 'v2'],
  'connection_log.format': ['json', 'text'],
  'connection_log.syslog.facility': ['kern', 'user', 'mail', 'daemon', 'auth', 'syslog', 'lpr', 'news', 'uucp', 'cron', 'authpriv', 'ftp', 'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7'],
  'healthCheck.role': ['primary', 'replica', 'any'],
  'healthCheck.type': ['tcp', 'send_expect', 'http', 'udp', 'postgres', 'mysql', 'redis', 'none'],
  'log.format': ['json', 'text'],
  'log.level': ['fatal', 'error', 'warn', 'info', 'debug', 'trace'],
  'service.balance': ['roundrobin', 'weighted', 'leastconn', 'random', 'source', 'maglev', 'least_time', 'least_bandwidth', 'first'],
  'service.datapath': ['auto', 'kernel', 'user'],
  'service.hash_key': ['five_tuple', 'source'],
  'service.postgres_cancel': ['auto', 'broadcast', 'off'],
  'service.protocol': ['tcp', 'udp'],
  'service.relay': ['auto', 'user', 'kernel'],
  'service.send_proxy': ['none', 'v1', 'v2'],
  'service.source': ['auto', 'client'],
  'service.sticky.key': ['source'],
} as const;

/** The minimum and maximum of every bounded integer of the schema, by path. */
export const SCHEMA_BOUNDS = {
  'admin.max_connections': { minimum: 1, maximum: 65536 },
  'announce.bfd_multiplier': { minimum: 2, maximum: 16 },
  'announce.local_as': { minimum: 1, maximum: 4294967295 },
  'announce.neighbors[].as': { minimum: 1, maximum: 4294967295 },
  'backend.max_connections': { minimum: 1, maximum: 1000000 },
  'backend.weight': { minimum: 0, maximum: 256 },
  'connection_log.max_per_second': { minimum: 0, maximum: 1000000000 },
  'ha.garp_repeat': { minimum: 1, maximum: 100 },
  'ha.priority': { minimum: 1, maximum: 254 },
  'ha.track.weight': { minimum: 0, maximum: 253 },
  'ha.vrid': { minimum: 1, maximum: 255 },
  'healthCheck.expect_status': { minimum: 100, maximum: 599 },
  'healthCheck.fall': { minimum: 1, maximum: 100 },
  'healthCheck.port': { minimum: 1, maximum: 65535 },
  'healthCheck.rise': { minimum: 1, maximum: 100 },
  'resolvers.tries': { minimum: 1, maximum: 10 },
  'service.client_limits.connection_burst': { minimum: 1, maximum: 1000000 },
  'service.client_limits.connection_rate': { minimum: 1, maximum: 1000000 },
  'service.client_limits.datagram_burst': { minimum: 1, maximum: 1000000 },
  'service.client_limits.datagram_rate': { minimum: 1, maximum: 1000000 },
  'service.client_limits.max_connections': { minimum: 1, maximum: 1000000 },
  'service.client_limits.table_size': { minimum: 16, maximum: 16777216 },
  'service.maglev_table_size': { minimum: 251, maximum: 4194301 },
  'service.max_flows': { minimum: 1, maximum: 16777216 },
  'service.passive.consecutive_failures': { minimum: 1, maximum: 1000 },
  'service.passive.max_ejection_percent': { minimum: 0, maximum: 100 },
  'service.queue.size': { minimum: 0, maximum: 1000000 },
  'service.retries': { minimum: 0, maximum: 16 },
  'service.sticky.size': { minimum: 1, maximum: 16777216 },
  'service.tcp_keepalive.count': { minimum: 1, maximum: 127 },
  'service.udp.responses': { minimum: 0, maximum: 1000000 },
  'workers': { minimum: 1, maximum: 256 },
} as const;

/** A duration's bounds in milliseconds; zeroIsOff: 0 is allowed too (below minMs), and turns the feature off. */
export interface DurationBound {
  minMs: number;
  maxMs: number;
  zeroIsOff?: true;
}

/** Every duration's bounds (the schema's minDuration / maxDuration), by path. */
export const DURATION_BOUNDS = {
  'announce.bfd_interval': { minMs: 10, maxMs: 10000 },
  'announce.hold_time': { minMs: 3000, maxMs: 65535000 },
  'announce.withdraw_grace': { minMs: 1, maxMs: 60000, zeroIsOff: true },
  'backend.slow_start': { minMs: 1, maxMs: 3600000, zeroIsOff: true },
  'connection_log.interval': { minMs: 1, maxMs: 604800000, zeroIsOff: true },
  'drain_timeout': { minMs: 1, maxMs: 86400000 },
  'ha.advert_interval': { minMs: 10, maxMs: 40950 },
  'ha.garp_delay': { minMs: 1, maxMs: 3600000, zeroIsOff: true },
  'ha.garp_refresh': { minMs: 1, maxMs: 3600000, zeroIsOff: true },
  'ha.preempt_delay': { minMs: 1, maxMs: 3600000, zeroIsOff: true },
  'healthCheck.fast_interval': { minMs: 1, maxMs: 3600000 },
  'healthCheck.interval': { minMs: 1, maxMs: 3600000 },
  'healthCheck.timeout': { minMs: 1, maxMs: 3600000 },
  'resolvers.max_ttl': { minMs: 100, maxMs: 86400000 },
  'resolvers.min_ttl': { minMs: 100, maxMs: 3600000 },
  'resolvers.retry': { minMs: 100, maxMs: 3600000 },
  'resolvers.timeout': { minMs: 10, maxMs: 30000 },
  'service.accept_proxy_timeout': { minMs: 1, maxMs: 60000 },
  'service.drain_timeout': { minMs: 1, maxMs: 86400000, zeroIsOff: true },
  'service.passive.base_ejection': { minMs: 1, maxMs: 3600000 },
  'service.passive.max_ejection': { minMs: 1, maxMs: 86400000 },
  'service.queue.timeout': { minMs: 1, maxMs: 3600000 },
  'service.slow_start': { minMs: 1, maxMs: 3600000, zeroIsOff: true },
  'service.sticky.timeout': { minMs: 1, maxMs: 604800000 },
  'service.tcp_keepalive.idle': { minMs: 1000, maxMs: 32400000 },
  'service.tcp_keepalive.interval': { minMs: 1000, maxMs: 32400000 },
  'service.timeouts.connect': { minMs: 1, maxMs: 3600000 },
  'service.timeouts.idle': { minMs: 1, maxMs: 604800000, zeroIsOff: true },
  'sync.interval': { minMs: 10, maxMs: 10000 },
  'sync.max_skew': { minMs: 1000, maxMs: 300000 },
} as const satisfies Record<string, DurationBound>;

export type EnumPath = keyof typeof SCHEMA_ENUMS;
export type BoundPath = keyof typeof SCHEMA_BOUNDS;
export type DurationPath = keyof typeof DURATION_BOUNDS;
