// The registry of Fulcrum's own errors. Each class has a stable `code`
// (FULCRUM_ERR_*, listed in the README under "Errors") that callers and tests
// match on; messages are for people and may change. Errors from the system
// keep Node's shape instead: an Error whose `code` is the errno name
// (EADDRINUSE...), as the native engine throws them.
import type { Endpoint } from './config/types.js';

export const ERROR_CODES = {
  config: 'FULCRUM_ERR_CONFIG',
  usage: 'FULCRUM_ERR_USAGE',
  bench: 'FULCRUM_ERR_BENCH',
  adminApi: 'FULCRUM_ERR_ADMIN_API',
  adminUnreachable: 'FULCRUM_ERR_ADMIN_UNREACHABLE',
  checkFailed: 'FULCRUM_ERR_CHECK_FAILED',
  demoBackend: 'FULCRUM_ERR_DEMO_BACKEND',
  notFound: 'FULCRUM_ERR_NOT_FOUND',
  range: 'FULCRUM_ERR_RANGE',
  stopped: 'FULCRUM_ERR_STOPPED',
  bird: 'FULCRUM_ERR_BIRD',
} as const;

export type FulcrumErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

/** Base class: every Fulcrum error has a stable `code`. */
export class FulcrumError extends Error {
  readonly code: FulcrumErrorCode;
  constructor(code: FulcrumErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The base of an error class that is only its code and a message (and maybe a cause). */
function messageError(code: FulcrumErrorCode): new (message: string, options?: ErrorOptions) => FulcrumError {
  return class extends FulcrumError {
    constructor(message: string, options?: ErrorOptions) {
      super(code, message, options);
    }
  };
}

/**
 * One problem in a config file. `line` and `column` are 1-based and point at
 * the offending YAML node; both are 0 when the problem is the file as a whole
 * (it could not be read).
 */
export interface ConfigIssue {
  file: string;
  line: number;
  column: number;
  message: string;
}

/** `file:line:column: message`, or `file: message` for a whole-file issue. */
export function formatIssue(issue: ConfigIssue): string {
  if (issue.line <= 0) return `${issue.file}: ${issue.message}`;
  return `${issue.file}:${issue.line}:${issue.column}: ${issue.message}`;
}

/**
 * A config file that cannot be used: unreadable, not YAML, or not valid.
 * `issues` lists every problem found (never empty); `message` has one
 * formatted issue a line, in file order.
 */
export class ConfigError extends FulcrumError {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[], options?: ErrorOptions) {
    if (issues.length === 0) throw new TypeError('ConfigError needs at least one issue');
    super(ERROR_CODES.config, issues.map(formatIssue).join('\n'), options);
    this.issues = issues;
  }
}

/** The command line is wrong. The CLI prints the message and the usage and exits 2. */
export class UsageError extends FulcrumError {
  /** The command whose usage applies, or undefined for the overall usage. */
  readonly command: string | undefined;
  constructor(message: string, command?: string) {
    super(ERROR_CODES.usage, message);
    this.command = command;
  }
}

/** `fulcrum bench`: the server refused a request, or a run could not be measured. */
export class BenchError extends messageError(ERROR_CODES.bench) {}

/**
 * An admin API request that failed: the server answers `status` with
 * {"error": {"code": apiCode, "message"}} and `headers`. `apiCode` is the
 * API's own stable name for the failure (not_found, bad_weight...).
 */
export class ApiError extends FulcrumError {
  readonly status: number;
  readonly apiCode: string;
  readonly headers: Readonly<Record<string, string>>;
  constructor(status: number, apiCode: string, message: string, headers: Record<string, string> = {}) {
    super(ERROR_CODES.adminApi, message);
    this.status = status;
    this.apiCode = apiCode;
    this.headers = headers;
  }
}

/** `fulcrum reload` / `status` could not talk to the admin API at all (exit 1), as opposed to the API saying no. */
export class AdminUnreachable extends messageError(ERROR_CODES.adminUnreachable) {}

/** A health check that did not pass; `message` is the detail shown (never a credential). */
export class CheckFailure extends messageError(ERROR_CODES.checkFailed) {}

/** `fulcrum demo`: a demo backend could not listen on `address`; `errnoName` is why (EADDRINUSE...). */
export class DemoBackendError extends FulcrumError {
  readonly address: Endpoint;
  readonly errnoName: string;
  constructor(address: Endpoint, errnoName: string, cause: unknown) {
    const why = errnoName === 'EADDRINUSE' ? 'the port is busy (EADDRINUSE)' : errnoName;
    super(ERROR_CODES.demoBackend, `demo backend ${address.text} cannot listen: ${why}`, { cause });
    this.address = address;
    this.errnoName = errnoName;
  }
}

/** The engine (or the backend control over it) has no such backend in that service. */
export class UnknownBackend extends FulcrumError {
  readonly service: string;
  readonly backend: string;
  constructor(service: string, backend: string) {
    super(ERROR_CODES.notFound, `no backend ${backend} in service ${service}`);
    this.service = service;
    this.backend = backend;
  }
}

/** A value handed to the engine at run time is outside what the config would accept (a weight). */
export class OutOfRange extends messageError(ERROR_CODES.range) {}

/** The engine was asked to do something after stop(). */
export class EngineStopped extends FulcrumError {
  constructor() {
    super(ERROR_CODES.stopped, 'the engine is stopped');
  }
}

/** `announce:` BIRD could not be started or configured (its own words are in the message). */
export class BirdError extends messageError(ERROR_CODES.bird) {}
