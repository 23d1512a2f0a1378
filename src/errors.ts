// The registry of Fulcrum's own errors. Each class has a stable `code`
// (FULCRUM_ERR_*) that callers and tests match on; messages are for people and
// may change. Errors from the system keep Node's shape instead: an Error whose
// `code` is the errno name (EADDRINUSE...), as the native engine throws them.

export const ERROR_CODES = {
  config: 'FULCRUM_ERR_CONFIG',
  usage: 'FULCRUM_ERR_USAGE',
  bench: 'FULCRUM_ERR_BENCH',
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
export class BenchError extends FulcrumError {
  constructor(message: string, options?: ErrorOptions) {
    super(ERROR_CODES.bench, message, options);
  }
}
