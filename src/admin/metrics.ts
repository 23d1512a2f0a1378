// /metrics in the Prometheus text format, through prom-client (the de facto
// Node client: exposition format, escaping and process metrics done right).
// Nothing is counted per connection in JS: every scrape reads the engine's
// shared-memory counters once (servicesView) and each metric's collect()
// copies the values it needs from that one snapshot. Series of removed
// services and backends disappear with them (collect resets first).
import { RELAY_FALLBACKS } from './relay-counters.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AdminState } from '../control/backend-control.js';
import { backendKey, splitBackendKey } from '../engine/backend-key.js';
import type { AdmissionField } from '../engine/counter-reader.js';
import { COUNTER_FIELDS } from '../engine/native.js';
import type { BackendState, EngineStats } from '../engine/stats.js';
import type { AnnounceSource, HaSource, SyncSource } from '../control/types.js';
import type { FulcrumRuntime } from '../runtime.js';
import { registerConnectionMetrics } from './connection-metrics.js';
import { servicesView, type BackendView, type ServiceView } from './state-view.js';
import { FLOW_COUNTERS } from './udp-counters.js';
import type { DnsEntryStatus } from '../discovery/dns-discovery.js';

/** Resolution of the default metrics' event-loop lag sampling (ms). */
const EVENT_LOOP_SAMPLE_MS = 100;

const BACKEND_STATES: readonly BackendState[] = ['up', 'down', 'drain', 'maint'];
const ADMIN_STATES: readonly AdminState[] = ['enabled', 'drain', 'maint'];
const HA_STATES = ['initialize', 'backup', 'master', 'fault'] as const;
/** Health checks take from well under a millisecond (loopback TCP) to their timeout (seconds). */
const CHECK_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Labels = Record<string, string>;
type Fill = (set: (labels: Labels, value: number) => void) => void;

/** The series each admission counter is (a Record over the layout's fields: a new counter does not compile until placed). */
const ADMISSION_SERIES: Readonly<Record<AdmissionField, { metric: 'refused' | 'untracked' | 'proxy'; labels: Labels }>> = {
  denied: { metric: 'refused', labels: { reason: 'denied' } },
  overConnections: { metric: 'refused', labels: { reason: 'max_connections' } },
  overRate: { metric: 'refused', labels: { reason: 'rate' } },
  untracked: { metric: 'untracked', labels: {} },
  proxyAccepted: { metric: 'proxy', labels: { result: 'accepted' } },
  proxyMissing: { metric: 'proxy', labels: { result: 'missing' } },
  proxyMalformed: { metric: 'proxy', labels: { result: 'malformed' } },
  proxyTimeout: { metric: 'proxy', labels: { result: 'timeout' } },
};
/** The flow events of fulcrum_udp_flows_total: the flow counters both status views print, by the same words, less the gauge. */
const FLOW_EVENTS = FLOW_COUNTERS.filter((c) => c.key !== 'flowsActive');

export class FulcrumMetrics {
  readonly registry = new Registry();
  readonly #runtime: FulcrumRuntime;
  /** The scrape's one read of the engine's counters. */
  #view: ServiceView[] = [];
  #stats: EngineStats | undefined;
  #haRegistered = false;
  #announceRegistered = false;
  #syncRegistered = false;
  /** Per backend, the time of the newest check already observed into the histogram. */
  readonly #checksSeen = new Map<string, number>();
  readonly #checkLatency: Histogram;

  constructor(runtime: FulcrumRuntime) {
    this.#runtime = runtime;
    // The event-loop lag histogram samples on a timer of this resolution; at
    // prom-client's default (10 ms) the control plane woke 100 times a second
    // on an idle balancer, each wake-up taking a core from the data plane's
    // neighbours. A tenth of that is ample for a control plane's lag.
    collectDefaultMetrics({ register: this.registry, prefix: 'fulcrum_', eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    const backends = (fn: (l: Labels, b: BackendView) => void): void => {
      for (const s of this.#view) for (const b of s.backends) fn({ service: s.name, backend: b.address }, b);
    };
    const S = ['service'];
    const B = ['service', 'backend'];

    this.#counter('fulcrum_service_connections_total', 'Client connections accepted by the service.', S, (set) =>
      this.#view.forEach((s) => set({ service: s.name }, s.accepted)));
    this.#counter('fulcrum_service_connections_failed_total', 'Client connections closed because no backend could be reached.', S, (set) =>
      this.#view.forEach((s) => set({ service: s.name }, s.failed)));
    this.#counter('fulcrum_service_queued_total', 'Client connections that waited in the queue for a backend with room.', S, (set) =>
      this.#view.forEach((s) => set({ service: s.name }, s.queued)));
    this.#counter('fulcrum_service_refused_total', 'Client connections refused: every backend and the queue full, or the queue timeout passed.', S, (set) =>
      this.#view.forEach((s) => set({ service: s.name }, s.refused)));
    this.#counter('fulcrum_service_queue_timeouts_total', 'Refused client connections that waited the whole queue timeout.', S, (set) =>
      this.#view.forEach((s) => set({ service: s.name }, s.queueTimeouts)));
    this.#counter('fulcrum_service_bytes_total', 'Bytes relayed; direction in: client to backend, out: backend to client.', [...S, 'direction'], (set) =>
      this.#view.forEach((s) => {
        set({ service: s.name, direction: 'in' }, s.bytesIn);
        set({ service: s.name, direction: 'out' }, s.bytesOut);
      }));
    const admission = (metric: 'refused' | 'untracked' | 'proxy'): Fill => (set) =>
      this.#view.forEach((s) => {
        for (const field of COUNTER_FIELDS.admission) {
          const series = ADMISSION_SERIES[field];
          if (series.metric === metric) set({ service: s.name, ...series.labels }, s.admission[field]);
        }
      });
    this.#counter('fulcrum_service_refused_clients_total', 'Clients turned away before any backend was touched, by reason: denied (allow/deny), max_connections and rate (client_limits). TCP counts connections, UDP datagrams.', [...S, 'reason'], admission('refused'));
    this.#counter('fulcrum_service_untracked_clients_total', 'Clients admitted without client_limits because the client table had no room for them.', S, admission('untracked'));
    this.#counter('fulcrum_service_proxy_headers_total', 'PROXY protocol headers from clients (accept_proxy), by result: accepted, missing, malformed, timeout (the last three closed the connection).', [...S, 'result'], admission('proxy'));
    const relays = (fn: (l: Labels, r: NonNullable<ServiceView['relay']>) => void): void => {
      for (const s of this.#view) if (s.relay) fn({ service: s.name }, s.relay);
    };
    this.#counter('fulcrum_kernel_relay_connections_total', 'TCP connections handed to the kernel relay (relay: kernel or auto).', S, (set) =>
      relays((l, r) => set(l, r.kernelEntered)));
    this.#gauge('fulcrum_kernel_relay_connections_active', 'TCP connections whose bytes the kernel relay moves now.', S, (set) =>
      relays((l, r) => set(l, r.kernelActive)));
    this.#counter('fulcrum_kernel_relay_bulk_exits_total', 'Connections that turned bulk in the kernel relay and went back to splice (relay: auto).', S, (set) =>
      relays((l, r) => set(l, r.kernelBulkExits)));
    this.#counter('fulcrum_kernel_relay_fallbacks_total', 'Connections that asked for the kernel relay and stayed in user space, by reason: unavailable (no CAP_BPF/CAP_NET_ADMIN or no sockmap), not_established (the client had already closed its side), map_full, refused.', [...S, 'reason'], (set) =>
      relays((l, r) => RELAY_FALLBACKS.forEach((f) => set({ ...l, reason: f.reason }, r[f.key]))));
    this.#gauge('fulcrum_service_connections_active', 'Client connections open now.', S, (set) =>
      this.#view.forEach((s) => set({ service: s.name }, s.active)));
    this.#gauge('fulcrum_service_backends_up', 'Backends of the service that take new connections now.', S, (set) =>
      this.#view.forEach((s) => set({ service: s.name }, s.backendsUp)));

    this.#counter('fulcrum_backend_connections_total', 'Connections established to the backend.', B, (set) => backends((l, b) => set(l, b.accepted)));
    this.#counter('fulcrum_backend_connect_failures_total', 'Failed connect attempts to the backend (refused, timed out, unreachable).', B, (set) =>
      backends((l, b) => set(l, b.failed)));
    this.#counter('fulcrum_backend_bytes_total', 'Bytes relayed; direction in: client to backend, out: backend to client.', [...B, 'direction'], (set) =>
      backends((l, b) => {
        set({ ...l, direction: 'in' }, b.bytesIn);
        set({ ...l, direction: 'out' }, b.bytesOut);
      }));
    this.#gauge('fulcrum_backend_connections_active', 'Connections open to the backend now.', B, (set) => backends((l, b) => set(l, b.active)));
    this.#gauge('fulcrum_backend_up', '1 when the backend takes new connections (effective state up), else 0.', B, (set) =>
      backends((l, b) => set(l, b.state === 'up' ? 1 : 0)));
    this.#gauge('fulcrum_backend_state', 'The state the engine runs the backend with: 1 for the current state, 0 for the others.', [...B, 'state'], (set) =>
      backends((l, b) => BACKEND_STATES.forEach((state) => set({ ...l, state }, b.state === state ? 1 : 0))));
    this.#gauge('fulcrum_backend_admin_state', "The operator's state for the backend (enabled: health decides): 1 for the current one.", [...B, 'state'], (set) =>
      backends((l, b) => ADMIN_STATES.forEach((state) => set({ ...l, state }, b.admin === state ? 1 : 0))));
    this.#gauge('fulcrum_backend_health_up', 'The health verdict: 1 healthy, 0 failing its checks or ejected; check names the check type.', [...B, 'check'], (set) =>
      backends((l, b) => set({ ...l, check: b.check.type }, b.health === 'up' ? 1 : 0)));
    this.#gauge('fulcrum_backend_weight', 'The weight in effect (configured or set through the admin API).', B, (set) => backends((l, b) => set(l, b.weight)));
    this.#counter('fulcrum_backend_ejections_total', 'Passive health ejections of the backend.', B, (set) => backends((l, b) => set(l, b.check.ejections)));
    this.#gauge('fulcrum_backend_connections_peak', 'The most connections open to the backend at once since it was added (exact, kept by the engine).', B, (set) => backends((l, b) => set(l, b.peak)));
    this.#counter('fulcrum_backend_down_transitions_total', 'Times the backend went down (health checks, passive ejection).', B, (set) => backends((l, b) => set(l, b.downTransitions)));
    this.#counter('fulcrum_backend_downtime_seconds_total', 'Time the backend spent down since it was added.', B, (set) => backends((l, b) => set(l, b.downtimeMs / 1000)));
    this.#gauge('fulcrum_health_check_last_duration_seconds', 'How long the last active health check of the backend took.', B, (set) =>
      backends((l, b) => {
        const last = b.check.history.at(-1);
        if (last) set(l, last.latencyMs / 1000);
      }));
    // protocol: udp services: datagrams and the flow table (no series for tcp services).
    const udpServices = (fn: (l: Labels, u: NonNullable<ServiceView['udp']>) => void): void => {
      for (const s of this.#view) if (s.udp) fn({ service: s.name }, s.udp);
    };
    this.#counter('fulcrum_udp_datagrams_total', 'UDP datagrams forwarded; direction in: client to backend, out: backend to client.', [...S, 'direction'], (set) =>
      udpServices((l, u) => {
        set({ ...l, direction: 'in' }, u.datagramsIn);
        set({ ...l, direction: 'out' }, u.datagramsOut);
      }));
    this.#counter('fulcrum_udp_datagrams_dropped_total', 'UDP datagrams received but not forwarded (no flow, a full buffer, beyond udp.responses).', S, (set) =>
      udpServices((l, u) => set(l, u.datagramsDropped)));
    this.#counter('fulcrum_udp_flows_total', 'UDP flows by event: created, expired (idle), evicted (max_flows), completed (udp.responses), moved (backend down or refused), dropped (could not be created).', [...S, 'event'], (set) =>
      udpServices((l, u) => FLOW_EVENTS.forEach((c) => set({ ...l, event: c.label }, u[c.key]))));
    this.#gauge('fulcrum_udp_flows_active', 'UDP flows open now.', S, (set) => udpServices((l, u) => set(l, u.flowsActive)));
    this.#checkLatency = new Histogram({
      name: 'fulcrum_health_check_duration_seconds',
      help: 'Active health check durations, by result (ok, fail).',
      labelNames: [...B, 'result'],
      buckets: CHECK_BUCKETS,
      registers: [this.registry],
      collect: () => this.#observeChecks(),
    });

    // Where each backend came from, as a label-only info series (join on service, backend).
    this.#gauge('fulcrum_backend_info', 'Always 1; origin says where the backend came from: file, api (added through the admin API) or dns (an answer for a name of the file, named by dns_name).', [...B, 'origin', 'dns_name'], (set) =>
      backends((l, b) => set({ ...l, origin: b.origin.split(' ')[0]!, dns_name: b.origin.startsWith('dns ') ? b.origin.slice(4) : '' }, 1)));
    // DNS discovery: per backend name of the file.
    const dnsEntries = (fn: (l: Labels, d: DnsEntryStatus) => void): void => {
      for (const d of this.#runtime.dns.status()) fn({ service: d.service, name: d.name }, d);
    };
    const N = ['service', 'name'];
    this.#gauge('fulcrum_dns_addresses', 'Addresses the last good answer for the name gave (the backends it has now).', N, (set) => dnsEntries((l, d) => set(l, d.addresses.length)));
    this.#gauge('fulcrum_dns_last_answer_timestamp_seconds', 'When the name last resolved (Unix time); absent until it has.', N, (set) =>
      dnsEntries((l, d) => d.lastAnswerAt !== undefined && set(l, d.lastAnswerAt / 1000)));
    this.#gauge('fulcrum_dns_last_failure_timestamp_seconds', 'When resolving the name last failed (Unix time); absent until it has.', N, (set) =>
      dnsEntries((l, d) => d.lastFailureAt !== undefined && set(l, d.lastFailureAt / 1000)));
    this.#gauge('fulcrum_dns_failing', '1 while the last resolution of the name failed (the last good answer stays in force), else 0.', N, (set) =>
      dnsEntries((l, d) => set(l, d.error === undefined ? 0 : 1)));
    this.#counter('fulcrum_dns_resolutions_total', 'Resolutions of the name, by result (answer, failure).', [...N, 'result'], (set) =>
      dnsEntries((l, d) => {
        set({ ...l, result: 'answer' }, d.resolutions - d.failures);
        set({ ...l, result: 'failure' }, d.failures);
      }));

    this.#counter('fulcrum_reloads_total', 'Config reloads since start, by result (applied, rejected).', ['result'], (set) => {
      const counts = this.#runtime.reloadCounts;
      set({ result: 'applied' }, counts.applied);
      set({ result: 'rejected' }, counts.rejected);
    });
    // The connection log's histograms and termination counts (native aggregates).
    registerConnectionMetrics(this.registry, () => (this.#runtime.engine.stopped ? undefined : this.#runtime.engine));
    // The kernel UDP datapath (udp_kernel_nat.h): per-CPU BPF counters, summed.
    const kernel = () => (this.#runtime.engine.stopped ? [] : this.#runtime.engine.udpDatapaths());
    this.#gauge('fulcrum_udp_datapath_kernel', 'protocol: udp services: 1 when the kernel datapath (tcx BPF NAT) is attached, 0 on the user-space relay.', ['service'], (set) =>
      kernel().forEach((d) => set({ service: d.service }, d.datapath === 'kernel' ? 1 : 0)));
    this.#gauge('fulcrum_udp_kernel_flows', 'Flows in the kernel datapath\'s flow map (counted once a second).', ['service'], (set) =>
      kernel().filter((d) => d.datapath === 'kernel').forEach((d) => set({ service: d.service }, d.flows)));
    this.#counter('fulcrum_udp_kernel_datagrams_total', 'Datagrams NATed by the kernel datapath, by direction (request: from clients, reply: from backends).', ['service', 'direction'], (set) =>
      kernel().filter((d) => d.datapath === 'kernel').forEach((d) => {
        set({ service: d.service, direction: 'request' }, d.stats.clientPackets);
        set({ service: d.service, direction: 'reply' }, d.stats.replyPackets);
      }));
    this.#counter('fulcrum_udp_kernel_bytes_total', 'Bytes (whole frames) NATed by the kernel datapath, by direction.', ['service', 'direction'], (set) =>
      kernel().filter((d) => d.datapath === 'kernel').forEach((d) => {
        set({ service: d.service, direction: 'request' }, d.stats.clientBytes);
        set({ service: d.service, direction: 'reply' }, d.stats.replyBytes);
      }));
    this.#counter('fulcrum_udp_kernel_flow_events_total', 'Kernel datapath flow events: created, moved (its backend went down or left), expired (idle).', ['service', 'event'], (set) =>
      kernel().filter((d) => d.datapath === 'kernel').forEach((d) => {
        set({ service: d.service, event: 'created' }, d.stats.newFlows);
        set({ service: d.service, event: 'moved' }, d.stats.movedFlows);
        set({ service: d.service, event: 'expired' }, d.expired);
      }));
    this.#counter('fulcrum_udp_kernel_passed_total', 'Datagrams the kernel datapath passed on to the user-space relay, by reason (no_backend, no_nat_port, unsupported: fragments or IP options); dropped: a rewrite failed.', ['service', 'reason'], (set) =>
      kernel().filter((d) => d.datapath === 'kernel').forEach((d) => {
        set({ service: d.service, reason: 'no_backend' }, d.stats.passedNoBackend);
        set({ service: d.service, reason: 'no_nat_port' }, d.stats.passedNoNatPort);
        set({ service: d.service, reason: 'unsupported' }, d.stats.passedUnsupported);
        set({ service: d.service, reason: 'dropped' }, d.stats.dropped);
      }));
    this.#gauge('fulcrum_config_generation', 'Configs applied since start (1 = the first).', [], (set) => set({}, this.#runtime.generation));
    this.#gauge('fulcrum_engine_pooled_pipes', "Empty pipes kept in the workers' pools.", [], (set) => set({}, this.#stats?.pooledPipes ?? 0));
    this.#counter('fulcrum_engine_accept_pauses_total', 'Times a worker paused accepting: at the connection budget, or out of file descriptors.', [], (set) =>
      set({}, this.#stats?.acceptPauses ?? 0));
    this.#counter('fulcrum_pg_cancel_broadcasts_total', "PostgreSQL cancel requests sent on to their service's other backends (postgres_cancel).", [], (set) =>
      set({}, this.#stats?.pgCancel.broadcasts ?? 0));
    this.#counter('fulcrum_pg_cancel_connections_total', 'Connections made to send a PostgreSQL cancel request on, by result (sent, failed).', ['result'], (set) => {
      set({ result: 'sent' }, this.#stats?.pgCancel.sent ?? 0);
      set({ result: 'failed' }, this.#stats?.pgCancel.failed ?? 0);
    });
    this.#counter('fulcrum_pg_cancel_skipped_total', 'PostgreSQL cancel requests not sent on because of the per-second bound (relayed to their own backend only).', [], (set) =>
      set({}, this.#stats?.pgCancel.skipped ?? 0));
    this.#gauge('fulcrum_accept_paused', 'Workers not accepting new connections now (clients wait in the listen backlog); 0 when every worker accepts.', [], (set) =>
      set({}, this.#stats?.acceptPaused ?? 0));
    const budget = this.#runtime.engine.budget;
    if (budget !== undefined) {
      this.#gauge('fulcrum_connection_budget', 'TCP connections open at once before accepting pauses, sized from the file descriptor limit.', [], (set) => set({}, budget.maxConnections));
      this.#gauge('fulcrum_fd_limit', 'The process file descriptor limit (RLIMIT_NOFILE).', [], (set) => set({}, budget.fdLimit));
      this.#gauge('fulcrum_fd_reserve', 'Descriptors kept back from connections: admin API, health checks, listeners, the runtime.', [], (set) => set({}, budget.reserve));
    }
  }

  /** The metrics text for one scrape. */
  async scrape(): Promise<string> {
    // HA may be attached after the admin server started (it starts once the listeners are bound).
    if (this.#runtime.ha && !this.#haRegistered) this.#registerHa(this.#runtime.ha);
    if (this.#runtime.announce && !this.#announceRegistered) this.#registerAnnounce(this.#runtime.announce);
    if (this.#runtime.sync && !this.#syncRegistered) this.#registerSync(this.#runtime.sync);
    this.#stats = this.#runtime.engine.stats();
    this.#view = servicesView(this.#runtime, this.#stats);
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  #registerHa(ha: HaSource): void {
    this.#haRegistered = true;
    this.#gauge('fulcrum_ha_state', 'The VRRP instance state: 1 for the current one.', ['state'], (set) => {
      const { state } = ha.status();
      HA_STATES.forEach((s) => set({ state: s }, s === state ? 1 : 0));
    });
    this.#gauge('fulcrum_ha_priority', 'Configured VRRP priority.', [], (set) => set({}, ha.status().priority));
    this.#gauge('fulcrum_ha_effective_priority', 'VRRP priority after tracking (an unhealthy data plane lowers it).', [], (set) =>
      set({}, ha.status().effectivePriority));
    this.#counter('fulcrum_ha_transitions_total', 'VRRP state changes.', [], (set) => set({}, ha.status().transitions));
    this.#counter('fulcrum_ha_events_total', 'VRRP counters by event.', ['event'], (set) => {
      for (const [event, n] of Object.entries(ha.status().counters)) set({ event }, n);
    });
  }

  #registerAnnounce(announce: AnnounceSource): void {
    this.#announceRegistered = true;
    this.#gauge('fulcrum_announce_vip_announced', 'Whether this node announces the VIP over BGP now (1) or has withdrawn it (0).', ['vip'], (set) => {
      for (const v of announce.status().vips) set({ vip: v.vip }, v.state === 'announced' ? 1 : 0);
    });
    this.#gauge('fulcrum_announce_bird_up', 'Whether BIRD answers on its control socket.', [], (set) => set({}, announce.status().bird.reachable ? 1 : 0));
    this.#gauge('fulcrum_announce_neighbor_established', 'Whether the BGP session with the neighbor is established.', ['neighbor'], (set) => {
      for (const n of announce.status().neighbors) set({ neighbor: n.address }, n.info === 'Established' ? 1 : 0);
    });
    this.#counter('fulcrum_announce_events_total', 'BGP announcement counters by event (announcements, withdrawals, birdcErrors, birdRestarts).', ['event'], (set) => {
      for (const [event, n] of Object.entries(announce.status().counters)) set({ event }, n);
    });
  }

  #registerSync(sync: SyncSource): void {
    this.#syncRegistered = true;
    this.#counter('fulcrum_sync_events_total', 'Session sync counters by event (messagesSent, recordsSent, recordsInstalled, journalDropped...).', ['event'], (set) => {
      for (const [event, n] of Object.entries(sync.status().counters)) set({ event }, n);
    });
    this.#counter('fulcrum_sync_rejected_total', 'Session sync datagrams rejected, by reason (badMac, replay, stale, notPeer, truncated...).', ['reason'], (set) => {
      for (const [reason, n] of Object.entries(sync.status().rejected)) set({ reason }, n);
    });
    this.#counter('fulcrum_sync_resync_refused_total', 'Resync requests (a restarted peer asking for a full copy) not served, by reason (alreadySent, tooSoon, stale, replay).', ['reason'], (set) => {
      for (const [reason, n] of Object.entries(sync.status().resyncRefused)) set({ reason }, n);
    });
    this.#gauge('fulcrum_sync_resync_taught', 'Whether this node has received a full copy of a peer\'s session state since it started.', [], (set) => set({}, sync.status().resync.state === 'taught' ? 1 : 0));
  }

  /** A gauge whose series are rebuilt at each scrape. */
  #gauge(name: string, help: string, labelNames: string[], fill: Fill): void {
    new Gauge({
      name, help, labelNames, registers: [this.registry],
      collect(this: Gauge) {
        this.reset();
        fill((labels, value) => this.set(labels, value));
      },
    });
  }

  /**
   * A counter that mirrors a total the engine keeps: at each scrape it is
   * reset and incremented to the current value. (prom-client's counters only
   * go up through inc(); the engine's totals are already monotonic.)
   */
  #counter(name: string, help: string, labelNames: string[], fill: Fill): void {
    new Counter({
      name, help, labelNames, registers: [this.registry],
      collect(this: Counter) {
        this.reset();
        fill((labels, value) => this.inc(labels, Math.max(0, value)));
      },
    });
  }

  /** Observe the checks that finished since the last scrape, from each backend's history. */
  #observeChecks(): void {
    const present = new Set<string>();
    for (const s of this.#view) {
      for (const b of s.backends) {
        const id = backendKey(s.name, b.address);
        present.add(id);
        const seen = this.#checksSeen.get(id) ?? 0;
        let newest = seen;
        for (const record of b.check.history) {
          if (record.at <= seen) continue;
          this.#checkLatency.observe({ service: s.name, backend: b.address, result: record.ok ? 'ok' : 'fail' }, record.latencyMs / 1000);
          newest = Math.max(newest, record.at);
        }
        this.#checksSeen.set(id, newest);
      }
    }
    for (const id of [...this.#checksSeen.keys()]) {
      if (present.has(id)) continue;
      this.#checksSeen.delete(id);
      const { service, address: backend } = splitBackendKey(id);
      for (const result of ['ok', 'fail']) this.#checkLatency.remove({ service, backend, result });
    }
  }
}
