// The admin HTTP server (node:http): the JSON API, Prometheus /metrics and
// the status page at /. Routes:
//
//   GET  /                                       status page (static HTML; no data, no token)
//   GET  /metrics                                Prometheus text format
//   GET  /api/status                             process, last reload, HA, every service and backend
//   GET  /api/status.csv                         one line per service and backend (HAProxy ;csv style, status-csv.ts)
//   GET  /api/services                           every service with its backends
//   GET  /api/services/:service                  one service
//   GET  /api/services/:service/backends/:addr   one backend (with its health history)
//   POST /api/services/:service/backends/:addr/drain|enable|disable|maint
//   POST /api/services/:service/backends/:addr/shutdown-sessions   close its open connections now
//   POST /api/services/:service/backends/:addr/weight   {"weight": 0..256}
//   POST /api/services/:service/backends         add a backend {"address", "weight", "backup", "health_check", "send_proxy"...}
//                                                 (201; 400 invalid, 404 no service, 409 already a backend)
//   DELETE /api/services/:service/backends/:addr  remove a backend the API added: it drains (409 for file and DNS backends)
//   GET  /api/config/dump                        the config file with the running backends (YAML, valid `fulcrum check` input)
//   GET  /api/dns                                each backend name being resolved: addresses, last answer, last failure
//   POST /api/reload                             re-read the config file; 200 applied, 422 rejected, 503 stopping
//   POST /api/reopen-logs                        reopen the connection log's file (logrotate); 200, 500 with the reason
//   POST /api/upgrade                            start the new Fulcrum, hand it the sockets (src/upgrade/); 200 {pid}
//                                                once it is ready, 500 with the reason, 409 busy or unsupported, 503 stopping
//   GET  /api/ha                                 VRRP status (404 without HA)
//   GET  /api/announce                           BGP announcement status (404 without announce:)
//   POST /api/announce/drain|resume              withdraw every VIP until resume / announce again
//   GET  /api/sync                               session sync status (404 without sync:)
//
// Errors are JSON {"error": {"code", "message"}} with a 4xx status. A POST
// body is JSON (Content-Type: application/json) of at most MAX_BODY_BYTES; an
// action needs no body, and an empty one may come without a Content-Type
// (`curl -X POST URL`), unless a browser says it comes from another origin.
// Auth: src/admin/auth.ts.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SCHEMA_BOUNDS } from '../config/raw-types.js';
import type { Endpoint } from '../config/types.js';
import type { AdminState } from '../control/backend-control.js';
import { ApiError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { FulcrumRuntime } from '../runtime.js';
import { fulcrumVersion } from '../version.js';
import { authorize } from './auth.js';
import { FulcrumMetrics } from './metrics.js';
import { servicesView, statusView, type ServiceView } from './state-view.js';
import { STATUS_PAGE } from './status-page.js';
import { statusCsv } from './status-csv.js';
import { configDump } from '../discovery/config-dump.js';

export const MAX_BODY_BYTES = 16 * 1024;
/** A connection that has not sent its request headers this long after it opened (or after its last response) is closed. */
export const ADMIN_HEADERS_TIMEOUT_MS = 5_000;
/** How often node:http looks for connections past their headers or request timeout (its default is 30s). */
const TIMEOUT_CHECK_MS = 1_000;
/** At most one log line per this long says admin connections were refused at max_connections. */
const DROP_LOG_MS = 60_000;

/** What POST /api/upgrade answers (the running process decides, src/commands/serve.ts). */
export type UpgradeOutcome = { ok: true; pid: number } | { ok: false; status: number; code: string; reason: string };

const ACTIONS: Readonly<Record<string, AdminState>> = { drain: 'drain', enable: 'enabled', disable: 'maint', maint: 'maint' };

export class AdminServer {
  readonly #runtime: FulcrumRuntime;
  readonly #logger: Logger;
  readonly #metrics: FulcrumMetrics;
  readonly #server: Server;
  #upgrade: (() => Promise<UpgradeOutcome>) | undefined;

  constructor(runtime: FulcrumRuntime, logger: Logger) {
    this.#runtime = runtime;
    this.#logger = logger;
    this.#metrics = new FulcrumMetrics(runtime);
    this.#server = createServer({ connectionsCheckingInterval: TIMEOUT_CHECK_MS }, (req, res) => void this.#handle(req, res));
    // Slow or idle clients must not pin sockets: the API answers in
    // milliseconds. headersTimeout also closes a socket that sends nothing
    // at all (checked every TIMEOUT_CHECK_MS); keepAliveTimeout one idle
    // between requests.
    this.#server.headersTimeout = ADMIN_HEADERS_TIMEOUT_MS;
    this.#server.requestTimeout = 10_000;
    this.#server.keepAliveTimeout = 5_000;
    this.#server.maxHeadersCount = 64;
    // The admin port draws on the process's descriptors like the traffic
    // does: past the cap, a new connection is closed as soon as it is
    // accepted (net.Server), so holding sockets open costs nobody else's.
    // Under a low RLIMIT_NOFILE the budget keeps fewer descriptors for the
    // admin API (fd-budget.ts): the cap follows, so the API cannot take them
    // from the traffic.
    this.#server.maxConnections = Math.min(runtime.config().admin.maxConnections, runtime.engine.budget?.adminConnections ?? Number.POSITIVE_INFINITY);
    this.#server.on('drop', () => this.#onDrop());
  }

  #dropped = 0;
  #dropLoggedAt = Number.NEGATIVE_INFINITY;

  /** A connection closed at max_connections: logged once a minute with the count since the last line. */
  #onDrop(): void {
    this.#dropped++;
    const now = Date.now();
    if (now - this.#dropLoggedAt < DROP_LOG_MS) return;
    this.#dropLoggedAt = now;
    this.#logger.warn(
      { maxConnections: this.#server.maxConnections, dropped: this.#dropped },
      'admin connection refused: admin.max_connections are open (idle ones close after 5s without a request)',
    );
    this.#dropped = 0;
  }

  /** Bind `endpoint`, or accept on `fd` (a socket bound to it, handed over by an upgrade);
   * rejects with the listen error (EADDRINUSE...). */
  listen(endpoint: Endpoint, fd?: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.#server.once('error', onError);
      this.#server.listen(fd !== undefined ? { fd } : { host: endpoint.host, port: endpoint.port }, () => {
        this.#server.off('error', onError);
        resolve();
      });
    });
  }

  /** The listening socket's descriptor, to hand to the next Fulcrum on upgrade (undefined when not listening). */
  get fd(): number | undefined {
    if (!this.#server.listening) return undefined;
    // node:http keeps the libuv handle on `_handle`; its fd is the socket's on Linux.
    const fd = (this.#server as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    return typeof fd === 'number' && fd >= 0 ? fd : undefined;
  }

  /** Where POST /api/upgrade goes; without it the route answers 409. */
  setUpgrade(upgrade: () => Promise<UpgradeOutcome>): void {
    this.#upgrade = upgrade;
  }

  /** Stop accepting (the next Fulcrum accepts on the same socket); requests in flight are answered. */
  stopListening(): void {
    if (this.#server.listening) this.#server.close();
  }

  get address(): AddressInfo {
    return this.#server.address() as AddressInfo;
  }

  get url(): string {
    const { address, port, family } = this.address;
    return family === 'IPv6' ? `http://[${address}]:${port}` : `http://${address}:${port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.#server.listening) return resolve();
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://admin.invalid');
      if (url.pathname === '/' && (req.method === 'GET' || req.method === 'HEAD')) {
        return send(res, 200, 'text/html; charset=utf-8', STATUS_PAGE, { 'Cache-Control': 'no-store', 'Content-Security-Policy': "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'" }, req.method === 'HEAD');
      }
      const auth = authorize(req, this.#runtime.config().admin.token);
      if (!auth.ok) {
        throw new ApiError(auth.status, auth.code, auth.message, auth.challenge ? { 'WWW-Authenticate': auth.challenge } : {});
      }
      await this.#route(req, res, url);
    } catch (err) {
      const error = err instanceof ApiError ? err : new ApiError(500, 'internal', err instanceof Error ? err.message : String(err));
      if (error.status >= 500) this.#logger.error({ err, url: req.url }, 'admin API request failed');
      if (res.headersSent) return void res.destroy();
      sendJson(res, error.status, { error: { code: error.apiCode, message: error.message } }, error.headers);
      // A body left unread (too large, or never read) must not be parsed as the next request.
      if (!req.complete) res.once('finish', () => req.destroy());
    }
  }

  async #route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const parts = url.pathname.split('/').slice(1).map(decodeSegment);
    const method = req.method ?? 'GET';
    const expect = (allowed: 'GET' | 'POST' | 'DELETE'): void => {
      if (method !== allowed) throw new ApiError(405, 'method_not_allowed', `${method} ${url.pathname}: use ${allowed}`, { Allow: allowed });
    };

    if (url.pathname === '/metrics') {
      expect('GET');
      return send(res, 200, this.#metrics.contentType, await this.#metrics.scrape());
    }
    if (parts[0] !== 'api') throw notFound(`no such path ${url.pathname}`);
    const [, resource, service, sub, backend, action, ...extra] = parts;

    if (resource === 'status.csv' && parts.length === 2) {
      expect('GET');
      return send(res, 200, 'text/csv; charset=utf-8', statusCsv(servicesView(this.#runtime)), { 'Cache-Control': 'no-store' });
    }
    if (resource === 'status' && parts.length === 2) {
      expect('GET');
      return sendJson(res, 200, statusView(this.#runtime, fulcrumVersion()));
    }
    if (resource === 'reload' && parts.length === 2) {
      expect('POST');
      await readJsonBody(req);
      if (this.#runtime.stopping) throw new ApiError(503, 'stopping', 'fulcrum is stopping: reload refused');
      const outcome = await this.#runtime.reload('api');
      return sendJson(res, outcome.ok ? 200 : 422, outcome);
    }
    if (resource === 'upgrade' && parts.length === 2) {
      expect('POST');
      await readJsonBody(req);
      if (!this.#upgrade) throw new ApiError(409, 'not_upgradable', 'this process cannot be upgraded (only `fulcrum run` can)');
      const outcome = await this.#upgrade();
      if (!outcome.ok) throw new ApiError(outcome.status, outcome.code, outcome.reason);
      return sendJson(res, 200, outcome);
    }
    if (resource === 'reopen-logs' && parts.length === 2) {
      expect('POST');
      await readJsonBody(req);
      try {
        this.#runtime.reopenLogs();
      } catch (err) {
        throw new ApiError(500, 'reopen_failed', `cannot reopen the connection log: ${err instanceof Error ? err.message : String(err)}`);
      }
      return sendJson(res, 200, { ok: true });
    }
    if (resource === 'ha' && parts.length === 2) {
      expect('GET');
      if (!this.#runtime.ha) throw notFound('high availability is not configured');
      return sendJson(res, 200, this.#runtime.ha.status());
    }
    if (resource === 'announce' && parts.length <= 3) {
      if (!this.#runtime.announce) throw notFound('announce: is not configured');
      if (parts.length === 2) {
        expect('GET');
        return sendJson(res, 200, this.#runtime.announce.status());
      }
      expect('POST');
      await readJsonBody(req);
      if (service === 'drain') await this.#runtime.announce.drain();
      else if (service === 'resume') await this.#runtime.announce.resume();
      else throw notFound(`unknown announce action "${service}"; expected drain or resume`);
      this.#logger.info({ remote: req.socket.remoteAddress }, `admin: announce ${service}`);
      return sendJson(res, 200, this.#runtime.announce.status());
    }
    if (resource === 'sync' && parts.length === 2) {
      expect('GET');
      if (!this.#runtime.sync) throw notFound('sync: is not configured');
      return sendJson(res, 200, this.#runtime.sync.status());
    }
    if (resource === 'dns' && parts.length === 2) {
      expect('GET');
      return sendJson(res, 200, { entries: this.#runtime.dns.status() });
    }
    if (resource === 'config' && service === 'dump' && parts.length === 3) {
      expect('GET');
      return send(res, 200, 'application/yaml; charset=utf-8', await configDump(this.#runtime), { 'Cache-Control': 'no-store' });
    }
    if (resource !== 'services' || extra.length > 0) throw notFound(`no such path ${url.pathname}`);

    if (service === undefined || service === '') {
      expect('GET');
      return sendJson(res, 200, { services: servicesView(this.#runtime) });
    }
    const view = this.#service(service);
    if (sub === undefined) {
      expect('GET');
      return sendJson(res, 200, view);
    }
    if (sub === 'backends' && (backend === undefined || backend === '') && parts.length <= 5) {
      expect('POST');
      const body = await readJsonBody(req);
      const started = performance.now();
      const added = await this.#runtime.addBackend(service, body);
      const after = this.#service(service).backends.find((b) => b.address === added.address.text)!;
      this.#logger.info({ service, backend: added.address.text, remote: req.socket.remoteAddress }, 'admin: backend added');
      return sendJson(res, 201, { service, backend: after, appliedMs: round(performance.now() - started), note: RUNTIME_NOTE });
    }
    if (sub !== 'backends' || backend === undefined || backend === '') throw notFound(`no such path ${url.pathname}`);
    const found = view.backends.find((b) => b.address === backend);
    if (!found) throw notFound(`no backend ${backend} in service ${service}; it has ${view.backends.map((b) => b.address).join(', ')}`);
    if (action === undefined && method === 'DELETE') {
      const started = performance.now();
      await this.#runtime.removeBackend(service, backend);
      this.#logger.info({ service, backend, remote: req.socket.remoteAddress }, 'admin: backend removed');
      return sendJson(res, 200, { service, backend, removed: true, draining: found.active, appliedMs: round(performance.now() - started), note: RUNTIME_NOTE });
    }
    if (action === undefined) {
      expect('GET');
      return sendJson(res, 200, { service, backend: found });
    }
    expect('POST');
    const body = await readJsonBody(req);
    if (action === 'weight') this.#setWeight(service, backend, body);
    else if (action === 'shutdown-sessions') {
      this.#runtime.engine.shutdownSessions(service, backend);
      this.#logger.info({ service, backend, open: found.active, remote: req.socket.remoteAddress }, 'admin: backend shutdown-sessions');
    } else if (Object.hasOwn(ACTIONS, action)) {
      this.#runtime.control.setAdmin(service, backend, ACTIONS[action]!);
      this.#logger.info({ service, backend, admin: ACTIONS[action], remote: req.socket.remoteAddress }, `admin: backend ${action}`);
    } else {
      throw notFound(`unknown action "${action}"; expected drain, enable, disable, maint, shutdown-sessions or weight`);
    }
    const after = this.#service(service).backends.find((b) => b.address === backend)!;
    return sendJson(res, 200, { service, backend: after, note: RUNTIME_NOTE });
  }

  #service(name: string): ServiceView {
    const views = servicesView(this.#runtime);
    const view = views.find((s) => s.name === name);
    if (!view) throw notFound(`no service ${name}; services: ${views.map((s) => s.name).join(', ')}`);
    return view;
  }

  #setWeight(service: string, backend: string, body: unknown): void {
    const weight = (body as { weight?: unknown } | undefined)?.weight;
    const { minimum, maximum } = SCHEMA_BOUNDS['backend.weight'];
    if (typeof weight !== 'number' || !Number.isInteger(weight) || weight < minimum || weight > maximum) {
      throw new ApiError(400, 'bad_weight', `expected a body {"weight": N} with N an integer from ${minimum} to ${maximum}, got ${JSON.stringify(weight ?? null)}`);
    }
    this.#runtime.setWeight(service, backend, weight);
    this.#logger.info({ service, backend, weight }, 'admin: backend weight set');
  }
}

/** What every runtime change answers with: it lasts until the next reload. */
export const RUNTIME_NOTE = 'runtime change: the next reload rebuilds the backends from the config file (the file wins); `fulcrum config dump` writes the running set as YAML';

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

function notFound(message: string): ApiError {
  return new ApiError(404, 'not_found', message);
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new ApiError(400, 'bad_path', `bad percent-encoding in path segment ${JSON.stringify(segment)}`);
  }
}

/**
 * Read a POST body of at most MAX_BODY_BYTES and parse it as JSON (an empty
 * body is undefined). A body needs Content-Type: application/json. An empty
 * body may come without a Content-Type (curl -X POST), except from a web page
 * of another origin: a browser sends such a POST without preflight, so only
 * the JSON type (which needs a preflight this server never grants) or the
 * Origin header (which every browser sends on a POST) tells it apart. See auth.ts.
 */
async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== '' && type !== 'application/json') throw unsupportedType(type);
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new ApiError(413, 'body_too_large', `the body may be at most ${MAX_BODY_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new ApiError(413, 'body_too_large', `the body may be at most ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (type === '') {
    if (text !== '') throw unsupportedType(type);
    if (fromOtherOrigin(req)) {
      throw new ApiError(403, 'cross_origin', 'a POST from a web page of another origin needs Content-Type: application/json');
    }
    return undefined;
  }
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ApiError(400, 'bad_json', `the body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function unsupportedType(type: string): ApiError {
  return new ApiError(415, 'unsupported_media_type', `a body needs Content-Type: application/json (got ${type === '' ? 'none' : type}); an empty body needs none`);
}

/** True when a browser says the request comes from a page of another origin (or an opaque one, Origin: null). */
function fromOtherOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return false;
  try {
    return new URL(origin).host !== req.headers.host;
  } catch {
    return true;
  }
}

function send(res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}, headOnly = false): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'X-Content-Type-Options': 'nosniff', ...headers });
  res.end(headOnly ? undefined : body);
}

function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(value, null, 2)}\n`, { 'Cache-Control': 'no-store', ...headers });
}
