// The status page served at `/`: one self-contained HTML document (no CDN, no
// external file) in the spirit of HAProxy's stats page. It holds no data: its
// script fetches /api/status every second and rebuilds the tables, computes
// throughput from the byte counters between two fetches, and POSTs the
// drain / maint / enable buttons to the API (each says what it does in its
// tooltip). A CSV link downloads /api/status.csv. When the API answers 401 the
// page asks for the token once and keeps it in localStorage. A protocol: udp
// service's table counts flows and datagrams (columns named so) and has a
// flow-table row under its totals; a TCP service's table is unchanged by that.
// A service with accept_proxy, allow/deny or client_limits has an admission
// row there too (clients refused before any backend, PROXY headers).
import { DATAGRAMS_DROPPED_MEANING, FLOW_COUNTERS } from './udp-counters.js';
import { ADMISSION_COUNTERS } from './admission-counters.js';
import { RELAY_FALLBACKS } from './relay-counters.js';
import { TERMINATION_MEANINGS } from './termination-words.js';

export const REFRESH_MS = 1000;

export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Fulcrum status</title>
<style>
  :root { --up:#c8f7c5; --down:#ff9c9c; --drain:#b9d4ff; --maint:#e0c58f; --line:#b8b8b8; --head:#3b4b63; }
  body { font: 13px/1.35 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 12px 14px; color: #1b1b1b; background: #fafafa; }
  h1 { font-size: 18px; margin: 0 0 4px; }
  h1 small { font-weight: normal; color: #555; font-size: 13px; }
  #meta { color: #444; margin-bottom: 10px; }
  #banner { display: none; padding: 6px 10px; margin: 8px 0; background: #ffe3a3; border: 1px solid #d9a400; }
  #banner.shown { display: block; }
  /* Fits a 1366 px laptop screen with every column (Actions included): small
     type, tight cells, headers that may wrap, the last check cut short (its
     whole text is its tooltip). With 3 px of padding the table sat at exactly
     1366 px and a rate with one digit more pushed it 1 px over. */
  table { border-collapse: collapse; margin: 6px 0 18px; width: 100%; background: #fff; font-size: 12px; }
  th, td { border: 1px solid var(--line); padding: 2px 2px; text-align: right; white-space: nowrap; }
  th { background: var(--head); color: #fff; font-weight: 600; white-space: normal; vertical-align: bottom; cursor: help; }
  td.last { max-width: 6em; overflow: hidden; text-overflow: ellipsis; text-align: left; }
  td.actions { text-align: left; }
  td.name, th.name { text-align: left; }
  caption { text-align: left; font-weight: 600; font-size: 14px; padding: 4px 0; }
  caption span { font-weight: normal; color: #555; }
  tr.service td { background: #e8ecf3; font-weight: 600; }
  /* The summary rows span the table and wrap: their length (more reasons, bigger counts) must not widen it. */
  tr.flows td, tr.admission td, tr.relay td, tr.ended td { background: #f1f4f9; text-align: left; white-space: normal; }
  tr.state-up td { background: var(--up); }
  tr.state-down td { background: var(--down); }
  tr.state-drain td { background: var(--drain); }
  tr.state-maint td { background: var(--maint); }
  td.state { font-weight: 700; text-transform: uppercase; }
  button { font: inherit; padding: 0 4px; margin: 0 1px; cursor: pointer; }
  #legend span { display: inline-block; padding: 1px 8px; margin-right: 6px; border: 1px solid var(--line); }
  .muted { color: #666; }
</style>
</head>
<body>
<h1>Fulcrum <small id="version"></small></h1>
<div id="meta">loading…</div>
<div id="announce" class="muted"></div>
<div id="banner" role="alert"></div>
<div id="legend">
  <span style="background:var(--up)" title="takes new connections">up</span><span style="background:var(--down)" title="its health checks failed: no new connections, open ones continue">down (health)</span><span style="background:var(--drain)" title="no new connections (sticky clients still come); open ones continue until they end">drain</span><span style="background:var(--maint)" title="an operator took it out: no new connections, sticky clients included; open ones continue">maint (disabled)</span>
  · <a href="/api/status.csv" id="csv" title="one line per service and backend, HAProxy ;csv style">CSV</a>
  <div class="muted" id="actions-help">Drain: no new connections, open ones continue until they end · Maint: no new connections, sticky clients included; open ones continue · Enable: back in rotation, health checks decide</div>
</div>
<div id="services"></div>
<script>
(() => {
  'use strict';
  const REFRESH_MS = ${REFRESH_MS};
  const TOKEN_KEY = 'fulcrum-admin-token';
  let previous = null; // last status, for throughput
  let asking = false;

  const token = () => localStorage.getItem(TOKEN_KEY);
  const headers = (json) => {
    const h = {};
    if (json) h['Content-Type'] = 'application/json';
    const t = token();
    if (t) h['Authorization'] = 'Bearer ' + t;
    return h;
  };

  // Ask for the token when the API says 401, once per answer: a cancelled
  // prompt is not repeated by the refresh loop (the banner's button asks again).
  let declined = false;
  function askToken() {
    asking = true;
    const entered = window.prompt('This Fulcrum admin API requires its token:');
    asking = false;
    if (!entered) { declined = true; return false; }
    declined = false;
    localStorage.setItem(TOKEN_KEY, entered.trim());
    return true;
  }

  async function api(path, options) {
    const res = await fetch(path, { cache: 'no-store', ...options });
    const userAction = Boolean(options && options.method === 'POST');
    if (res.status === 401 && !asking && (!declined || userAction) && askToken()) {
      return fetch(path, { cache: 'no-store', ...options, headers: { ...(options && options.headers), ...headers(userAction) } });
    }
    return res;
  }

  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') node.className = v; else node.setAttribute(k, v);
    }
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  };

  const bytes = (n) => {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    // Three significant digits at most (52.5 MiB, 107 MiB, 5.25 GiB): narrow cells.
    const digits = i === 0 || n >= 100 ? 0 : n >= 10 ? 1 : 2;
    return n.toFixed(digits) + ' ' + units[i];
  };
  const rate = (n) => bytes(n) + '/s';
  const duration = (ms) => {
    const s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    return (d ? d + 'd ' : '') + (d || h ? h + 'h ' : '') + m + 'm ' + (s % 60) + 's';
  };
  // The two largest units only (1d 3h, 2h 5m, 4m 7s): table cells stay narrow.
  const shortDuration = (ms) => duration(ms).split(' ').slice(0, 2).join(' ');

  function rates(now, key, bytesIn, bytesOut) {
    const before = previous && previous.counters.get(key);
    if (!before) return ['–', '–'];
    const seconds = (now - previous.now) / 1000;
    if (seconds <= 0) return ['–', '–'];
    return [rate(Math.max(0, bytesIn - before[0]) / seconds), rate(Math.max(0, bytesOut - before[1]) / seconds)];
  }

  const COLUMNS = ['Backend', 'State', 'Since', 'Health', 'Admin', 'Check', 'Role', 'Wt', 'Bck', 'Active', 'Peak / limit', 'Conn/s', 'Total', 'Failed', 'Queue', 'Down', 'Downtime', 'Bytes in', 'Bytes out', 'Rate in', 'Rate out', 'Last check', 'Actions'];
  // protocol: udp: the engine's active / total / failed count flows there, datagrams come before
  // bytes, and there is no queue (a datagram is not queued).
  const UDP_COLUMNS = [...COLUMNS.slice(0, COLUMNS.indexOf('Active')), 'Flows', 'Peak / limit', 'Flows/s', 'Flows total', 'Failed', 'Down', 'Downtime', 'Datagrams in', 'Datagrams out', ...COLUMNS.slice(COLUMNS.indexOf('Bytes in'))];
  const TITLES = {
    'Backend': 'the backend address (the service row: totals)',
    'State': 'what the engine runs: up, down (health), drain or maint',
    'Since': 'how long the state has held',
    'Health': "the health checks' verdict",
    'Admin': "the operator's state: enabled (health decides), drain or maint",
    'Check': "the active check's type",
    'Role': 'the role the check detected (primary / replica); – when the check tells none',
    'Wt': 'weight in effect',
    'Bck': 'Y: a backup, used only while no primary is available',
    'Active': 'connections open now',
    'Peak / limit': 'the most connections open at once since the backend was added (exact), and its max_connections (– no limit)',
    'Conn/s': 'new connections per second over the last second (highest since start in the tooltip)',
    'Total': 'service: clients accepted; backend: connections established',
    'Failed': 'service: clients closed because no backend could be reached; backend: failed connect attempts',
    'Queue': "the service's queue (per service, not per backend): clients waiting now / that waited / refused",
    'Down': 'times the backend went down (health checks, passive ejection)',
    'Downtime': 'time spent down since the backend was added',
    'Bytes in': 'client to backend',
    'Bytes out': 'backend to client',
    'Rate in': 'client to backend, per second',
    'Rate out': 'backend to client, per second',
    'Last check': 'the last active check: result, latency, detail',
    'Actions': 'Drain: no new connections, open ones continue. Maint: out, sticky clients too, open ones continue. Enable: health decides.',
    'Flows': 'flows open now',
    'Flows/s': 'new flows per second over the last second',
    'Flows total': 'service: flows created; backend: flows given to it (created or moved)',
    'Datagrams in': 'client to backend, forwarded',
    'Datagrams out': 'backend to client, forwarded',
  };
  const UDP_TITLES = { 'Failed': 'service: new flows dropped; backend: ICMP unreachable answers and send errors' };
  // What each button does, on the button itself (tooltip and accessible name).
  const ACTIONS = [
    ['drain', 'Drain', "Drain: no new connections (sticky clients still come); open ones continue until they end (closed after the service's drain_timeout only if it sets one)"],
    ['maint', 'Maint', 'Maintenance: no new connections, sticky clients included; open ones continue; checks go on but only Enable brings it back'],
    ['enable', 'Enable', 'Enable: back in rotation; its health checks decide'],
  ];
  const FLOW_COUNTERS = ${JSON.stringify(FLOW_COUNTERS)};
  const DATAGRAMS_DROPPED_MEANING = ${JSON.stringify(DATAGRAMS_DROPPED_MEANING)};
  // protocol: udp: the kernel datapath (tcx BPF NAT) and what it carried, or the relay and why.
  const datapathText = (d) => !d ? ''
    : d.datapath === 'kernel'
      ? 'kernel datapath (' + d.clientInterface + ' / ' + d.backendInterface + ', ' + d.flows + ' flows, ' + d.stats.clientPackets + ' / ' + d.stats.replyPackets + ' datagrams in / out) · '
      : 'user datapath' + (d.configured === 'user' ? '' : ' (' + d.reason + ')') + ' · ';
  const datagramCells = (udp) => udp
    ? [el('td', { class: 'datagrams-in' }, udp.datagramsIn), el('td', { class: 'datagrams-out' }, udp.datagramsOut)]
    : [];
  // The flow table's counters, one labelled span each, across the whole table.
  const flowTableRow = (udp, width) => el('tr', { class: 'flows' }, el('td', { colspan: width },
    'flow table: ',
    ...FLOW_COUNTERS.flatMap((c) => [el('span', { 'data-counter': c.key, title: c.meaning }, udp[c.key] + ' ' + c.label), ' · ']),
    el('span', { 'data-counter': 'datagramsDropped', title: DATAGRAMS_DROPPED_MEANING }, 'datagrams dropped ' + udp.datagramsDropped)));

  const ADMISSION_COUNTERS = ${JSON.stringify(ADMISSION_COUNTERS)};
  const admissionRow = (admission, width) => el('tr', { class: 'admission' }, el('td', { colspan: width },
    'admission: ',
    ...ADMISSION_COUNTERS.flatMap((c, i) => [el('span', { 'data-counter': c.key, title: c.meaning }, admission[c.key] + ' ' + c.label), i < ADMISSION_COUNTERS.length - 1 ? ' · ' : ''])));

  const RELAY_FALLBACKS = ${JSON.stringify(RELAY_FALLBACKS)};
  // The kernel relay (relay:): connections in the kernel now, and those that came back or never went.
  const relayRow = (relay, width) => el('tr', { class: 'relay' }, el('td', { colspan: width },
    'relay ' + relay.mode + ': ',
    el('span', { 'data-counter': 'kernelActive', title: 'connections whose bytes the kernel moves now' }, relay.kernelActive + ' in the kernel'), ' · ',
    el('span', { 'data-counter': 'kernelEntered', title: 'connections handed to the kernel relay since start' }, relay.kernelEntered + ' entered'), ' · ',
    el('span', { 'data-counter': 'kernelBulkExits', title: 'connections that turned bulk and went back to splice' }, relay.kernelBulkExits + ' back to splice'),
    ' · stayed in user space: ',
    ...RELAY_FALLBACKS.flatMap((f, i) => [el('span', { 'data-counter': f.key, title: f.meaning }, relay[f.key] + ' ' + f.label), i < RELAY_FALLBACKS.length - 1 ? ' · ' : ''])));

  const TERMINATION_MEANINGS = ${JSON.stringify(TERMINATION_MEANINGS)};
  // How the service's connections ended since start (connection log), most first.
  // A backend name being resolved (DNS discovery): what it gives now, when DNS last answered or failed.
  const dnsRow = (d, now, width) => {
    const ago = (at) => at === undefined ? 'never' : shortDuration(Math.max(0, now - at)) + ' ago';
    const count = d.addresses.length + (d.addresses.length === 1 ? ' address' : ' addresses');
    const text = 'dns ' + d.name + ': ' + (d.error !== undefined ? 'FAILING: ' + d.error + ' · ' + (d.addresses.length === 0 ? 'no address yet' : 'keeping ' + count) : count) +
      ' · last answer ' + ago(d.lastAnswerAt) + (d.ttlSeconds !== undefined ? ' (ttl ' + d.ttlSeconds + 's)' : '') + ' · last failure ' + ago(d.lastFailureAt);
    return el('tr', { class: 'dns' + (d.error !== undefined ? ' failing' : ''), 'data-dns': d.name }, el('td', { colspan: width }, text));
  };
  const endedRow = (ended, width) => {
    const parts = Object.entries(ended).sort((a, b) => b[1] - a[1]);
    return el('tr', { class: 'ended' }, el('td', { colspan: width },
      'ended: ', ...(parts.length === 0 ? ['none yet'] : parts.flatMap(([name, n], i) =>
        [el('span', { 'data-termination': name, title: TERMINATION_MEANINGS[name] || '' }, n + ' ' + name), i < parts.length - 1 ? ' · ' : '']))));
  };

  function render(status) {
    document.getElementById('version').textContent = 'v' + status.version;
    const reload = status.lastReload
      ? ' · last reload ' + new Date(status.lastReload.at).toLocaleTimeString() + ' (' + status.lastReload.trigger + ', ' + (status.lastReload.outcome.ok ? 'applied' : 'rejected') + ')'
      : '';
    const ha = status.ha ? ' · HA ' + status.ha.state.toUpperCase() + ' (VRID ' + status.ha.vrid + ', priority ' + status.ha.effectivePriority + ')' : '';
    document.getElementById('meta').textContent =
      'pid ' + status.pid + ' · ' + status.workers + ' workers · up ' + duration(status.now - status.startedAt) +
      ' · config ' + status.config + ' (generation ' + status.generation + ')' + reload + ha +
      ' · refreshed ' + new Date(status.now).toLocaleTimeString();
    renderAnnounce(status);
    const counters = new Map();
    const root = document.getElementById('services');
    const tables = [];
    for (const service of status.services) {
      const udp = service.udp;
      const columns = udp ? UDP_COLUMNS : COLUMNS;
      const table = el('table', { 'data-service': service.name });
      // The queue is TCP's (a datagram is not queued), so a udp caption leaves it out.
      const queue = udp ? '' : ' · queued ' + service.queued + ' · refused ' + service.refused;
      table.append(el('caption', {}, service.name + ' ', el('span', {}, service.listen + ' · ' + (udp ? 'udp · ' + datapathText(service.datapath) : '') + service.balance + ' · ' + service.backendsUp + '/' + service.backends.length + ' backends up' + queue)));
      table.append(el('thead', {}, el('tr', {}, ...columns.map((c, i) => el('th', { ...(i === 0 ? { class: 'name' } : {}), title: (udp && UDP_TITLES[c]) || TITLES[c] || '' }, c)))));
      const body = el('tbody');
      const [sin, sout] = rates(status.now, service.name, service.bytesIn, service.bytesOut);
      counters.set(service.name, [service.bytesIn, service.bytesOut]);
      const blank = (n) => Array.from({ length: n }, () => el('td', {}, ''));
      // The queue is the service's: its row holds it (waited / refused); a backend has none.
      const queueCell = udp ? [] : [el('td', { class: 'queue', title: service.queueCurrent + ' waiting now, ' + service.queued + ' waited in the queue since start, ' + service.refused + ' refused (' + service.queueTimeouts + ' after the queue timeout)' }, service.queueCurrent + ' / ' + service.queued + ' / ' + service.refused)];
      body.append(el('tr', { class: 'service' },
        el('td', { class: 'name' }, 'service total'), el('td', {}, service.backendsUp > 0 ? 'OPEN' : 'NO BACKEND'), ...blank(7),
        el('td', { class: 'active' }, service.active), el('td', { class: 'peak', title: 'the peak is kept per backend (against its max_connections)' }, '–'),
        el('td', { class: 'session-rate', title: 'highest since start: ' + Math.round(service.sessionRateMax) + '/s' }, Math.round(service.sessionRate)),
        el('td', {}, service.accepted), el('td', {}, service.failed), ...queueCell, ...blank(2), ...datagramCells(udp),
        el('td', {}, bytes(service.bytesIn)), el('td', {}, bytes(service.bytesOut)), el('td', { class: 'rate-in' }, sin), el('td', { class: 'rate-out' }, sout), el('td', {}, ''), el('td', {}, '')));
      if (udp) body.append(flowTableRow(udp, columns.length));
      if (service.guarded) body.append(admissionRow(service.admission, columns.length));
      if (service.relay && (service.relay.mode === 'kernel' || service.relay.kernelEntered > 0 || RELAY_FALLBACKS.some((f) => service.relay[f.key] > 0))) body.append(relayRow(service.relay, columns.length));
      body.append(endedRow(service.ended, columns.length));
      for (const d of service.dns || []) body.append(dnsRow(d, status.now, columns.length));
      for (const b of service.backends) {
        const key = service.name + '/' + b.address;
        const [rin, rout] = rates(status.now, key, b.bytesIn, b.bytesOut);
        counters.set(key, [b.bytesIn, b.bytesOut]);
        const last = b.check.history[b.check.history.length - 1];
        const lastCheck = last ? (last.ok ? 'ok' : 'FAIL') + ' ' + last.latencyMs.toFixed(1) + ' ms' + (last.detail ? ' · ' + last.detail : '') : '–';
        const action = ([name, label, title]) => el('button', { type: 'button', 'data-action': name, 'data-service': service.name, 'data-backend': b.address, title, 'aria-label': title }, label);
        const limit = b.maxConnections > 0 ? String(b.maxConnections) : '–';
        body.append(el('tr', { class: 'backend state-' + b.state, 'data-backend': key },
          el('td', { class: 'name' }, b.address, ...(b.origin && b.origin !== 'file' ? [' ', el('span', { class: 'origin muted', title: b.origin === 'api' ? 'added through the admin API (the next reload rebuilds from the file)' : 'from DNS: ' + b.origin.slice(4) }, b.origin)] : [])),
          el('td', { class: 'state' }, b.state),
          el('td', { class: 'since', title: duration(Math.max(0, status.now - b.since)) }, shortDuration(Math.max(0, status.now - b.since))),
          el('td', { class: 'health' }, b.health),
          el('td', { class: 'admin' }, b.admin),
          el('td', { class: 'check' }, b.check.type),
          el('td', { class: 'role' }, b.check.role || '–'),
          el('td', { class: 'weight' }, b.weight),
          el('td', { class: 'backup' }, b.backup ? 'Y' : ''),
          el('td', { class: 'active' }, b.active),
          el('td', { class: 'peak', title: 'peak ' + b.peak + ' connections at once' + (b.maxConnections > 0 ? ' of max_connections ' + b.maxConnections : ', no max_connections') }, b.peak + ' / ' + limit),
          el('td', { class: 'session-rate', title: 'highest since start: ' + Math.round(b.sessionRateMax) + '/s' }, Math.round(b.sessionRate)),
          el('td', {}, b.accepted), el('td', {}, b.failed), ...(udp ? [] : [el('td', { class: 'queue' }, '')]),
          el('td', { class: 'down-transitions' }, b.downTransitions), el('td', { class: 'downtime', title: duration(b.downtimeMs) }, shortDuration(b.downtimeMs)),
          ...datagramCells(udp && b.udp),
          el('td', {}, bytes(b.bytesIn)), el('td', {}, bytes(b.bytesOut)), el('td', { class: 'rate-in' }, rin), el('td', { class: 'rate-out' }, rout),
          el('td', { class: 'last muted', title: lastCheck }, last ? (last.ok ? 'ok' : 'FAIL') + ' ' + last.latencyMs.toFixed(1) + ' ms' : '–'),
          el('td', { class: 'actions' }, ...ACTIONS.map(action))));
      }
      table.append(body);
      tables.push(table);
    }
    root.replaceChildren(...tables);
    previous = { now: status.now, counters };
  }

  // BGP (announce:) and session sync (sync:): one line each, when configured.
  function renderAnnounce(status) {
    const lines = [];
    const a = status.announce;
    if (a) {
      const bird = a.bird.reachable ? 'BIRD ' + (a.bird.managed ? 'pid ' + (a.bird.pid ?? '?') : 'at ' + a.bird.socket) : 'BIRD NOT REACHABLE' + (a.bird.lastError ? ' (' + a.bird.lastError + ')' : '');
      const vips = a.vips.map((v) => el('span', { class: 'vip vip-' + v.state, 'data-vip': v.vip, title: 'since ' + new Date(v.since).toLocaleTimeString() },
        v.vip + ' ' + v.state.toUpperCase() + (v.state === 'announced' ? '' : ' (' + v.reason + ')')));
      const peers = a.neighbors.map((n) => n.address + ' AS' + n.as + ' ' + (n.info || n.state)).join(', ');
      lines.push(el('div', { id: 'announce-line' }, 'BGP AS' + a.localAs + ' · ' + bird + (a.bfd ? ' · BFD' : '') + ' · ', ...vips.flatMap((v) => [v, ' ']), '· neighbors ' + peers));
    }
    const y = status.sync;
    if (y) {
      const rejected = Object.values(y.rejected).reduce((sum, n) => sum + n, 0);
      lines.push(el('div', { id: 'sync-line' }, 'session sync ' + y.listen + ' → ' + y.peers.map((p) => p.address + (p.lastAcceptedAt ? ' (heard ' + duration(Math.max(0, status.now - p.lastAcceptedAt)) + ' ago)' : ' (not heard)')).join(', ') +
        ' · sent ' + y.counters.recordsSent + ' · installed ' + y.counters.recordsInstalled + ' · rejected ' + rejected + resyncText(y.resync)));
    }
    document.getElementById('announce').replaceChildren(...lines);
  }

  // This node's resync at start: who taught it the peers' clients, or that it is still asking.
  function resyncText(r) {
    if (!r) return '';
    if (r.state === 'taught') return ' · taught by ' + r.taughtBy + ' in ' + r.taughtAfterMs + ' ms';
    if (r.state === 'gaveUp') return ' · resync: no peer answered';
    return ' · resync: ' + r.state;
  }

  function banner(text, withTokenButton) {
    const node = document.getElementById('banner');
    node.textContent = text || '';
    if (withTokenButton) node.append(' ', el('button', { type: 'button', 'data-token': '1' }, 'Enter token'));
    node.classList.toggle('shown', Boolean(text));
  }

  async function refresh() {
    try {
      const res = await api('/api/status', { headers: headers(false) });
      if (!res.ok) {
        const body = await res.json().catch(() => ({}));
        banner('admin API: ' + res.status + ' ' + ((body.error && body.error.message) || res.statusText), res.status === 401);
      } else {
        render(await res.json());
        banner('');
      }
    } catch (err) {
      banner('cannot reach the admin API (' + err.message + '); retrying every second');
    } finally {
      setTimeout(refresh, REFRESH_MS);
    }
  }

  // The CSV link: fetched with the token (a plain link would not carry it), saved as a file.
  async function downloadCsv() {
    const res = await api('/api/status.csv', { headers: headers(false) });
    if (!res.ok) return banner('CSV export: ' + res.status + ' ' + res.statusText);
    const url = URL.createObjectURL(await res.blob());
    const link = el('a', { href: url, download: 'fulcrum-status.csv' });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  document.addEventListener('click', async (event) => {
    if (event.target.closest('button[data-token]')) {
      if (askToken()) banner('');
      return;
    }
    if (event.target.closest('a#csv')) {
      event.preventDefault();
      await downloadCsv();
      return;
    }
    const button = event.target.closest('button[data-action]');
    if (!button) return;
    const { action, service, backend } = button.dataset;
    const path = '/api/services/' + encodeURIComponent(service) + '/backends/' + encodeURIComponent(backend) + '/' + action;
    try {
      const res = await api(path, { method: 'POST', headers: headers(true), body: '{}' });
      if (!res.ok) {
        const body = await res.json().catch(() => ({}));
        banner(action + ' ' + backend + ' failed: ' + ((body.error && body.error.message) || res.status));
        return;
      }
      banner('');
      const statusRes = await api('/api/status', { headers: headers(false) });
      if (statusRes.ok) render(await statusRes.json());
    } catch (err) {
      banner(action + ' ' + backend + ' failed: ' + err.message);
    }
  });

  refresh();
})();
</script>
</body>
</html>
`;
