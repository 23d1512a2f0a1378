// Command-line usage: help texts, and option parsing on top of node:util
// parseArgs that turns its errors into UsageError (src/errors.ts; exit 2).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { defaultAdminListen } from '../config/admin.js';
import { UsageError } from '../errors.js';
import { LOG_LEVELS, isLogLevel, type LogLevel } from '../logger.js';
import { BENCH_USAGE } from '../bench/usage-text.js';

export type CommandName = 'run' | 'check' | 'demo' | 'reload' | 'upgrade' | 'status' | 'reopen-logs' | 'bench' | 'backend' | 'config' | 'systemd-unit';
export const COMMANDS: readonly CommandName[] = ['run', 'check', 'demo', 'reload', 'upgrade', 'status', 'reopen-logs', 'bench', 'backend', 'config', 'systemd-unit'];

export function isCommandName(value: string): value is CommandName {
  return (COMMANDS as readonly string[]).includes(value);
}

export const MAIN_USAGE = `Usage: fulcrum <command> [options]

Fulcrum is a layer-4 TCP/UDP load balancer: a TypeScript control plane
driving a C++ data plane (splice() for TCP, batched datagrams for UDP).

Commands:
  run     Load a config and balance traffic until SIGINT/SIGTERM
  check   Validate a config file and exit
  demo    Start demo echo backends for a config's loopback backends, then run it
  reload  Make a running Fulcrum re-read its config file (through the admin API)
  backend Add, remove, drain, enable, maint or re-weight a backend at run time
  config  config dump: print the running config (with runtime-added backends) as YAML
  upgrade Start the installed Fulcrum in place of a running one, refusing no connection
  status  Show a running Fulcrum's services and backends (through the admin API)
  reopen-logs  Make a running Fulcrum reopen its connection log file (for logrotate)
  systemd-unit Print a systemd unit (Type=notify) for this installation
  bench   iperf-style benchmark: bench server | bench client HOST:PORT | bench compare

Options:
  -h, --help      Show help (also: fulcrum <command> --help)
  -v, --version   Print the version

Exit codes: 0 ok, 1 runtime error, 2 usage or config error.
`;

const LEVELS = LOG_LEVELS.join('|');
/** admin.listen's default (the schema's). */
const ADMIN = defaultAdminListen();

export const COMMAND_USAGE: Record<CommandName, string> = {
  run: `Usage: fulcrum run -c FILE [--log-level LEVEL]

Load FILE, bind every service's listen address and relay connections to its
backends. On SIGINT or SIGTERM, stop accepting (new connects are refused) and
let open connections finish for up to drain_timeout; a second signal stops at
once and cuts them. SIGHUP reloads FILE (like \`fulcrum reload\`): an invalid
file changes nothing and is logged. SIGUSR2 upgrades (like \`fulcrum upgrade\`).
A listen address another process holds (a second Fulcrum too) is an error that
names the holder. The admin API, /metrics and the status page listen on
admin.listen (default ${ADMIN}). Logs are JSON lines on stdout (log.format:
text for plain lines).

Options:
  -c, --config FILE     Config file (YAML)
      --log-level LEVEL Override log.level (${LEVELS})
  -h, --help            Show this help
`,
  check: `Usage: fulcrum check -c FILE

Validate FILE without starting anything. Prints "FILE: OK (N services)" and
exits 0, or prints one "file:line:column: message" line per problem to stderr
and exits 2. Also reads what the running Fulcrum reads only later, so that
what would fail at run time fails here: health-check passwords from
password_file and password_env. Run it as the user, and with the environment,
that Fulcrum runs with.

Options:
  -c, --config FILE     Config file (YAML)
  -h, --help            Show this help
`,
  demo: `Usage: fulcrum demo [-c FILE] [--log-level LEVEL]

What \`npm start\` runs. For every backend in FILE on a loopback address, start
a small demo backend in this process that greets each connection with a line
"fulcrum demo backend HOST:PORT" and then echoes what it receives; then run
FILE exactly like \`fulcrum run\`, and print how to send traffic through it.

Options:
  -c, --config FILE     Config file (YAML), default: the bundled config/fulcrum.yaml
      --log-level LEVEL Override log.level (${LEVELS})
  -h, --help            Show this help
`,
  reload: `Usage: fulcrum reload [-c FILE | --admin HOST:PORT] [--token-file FILE]

Ask the running Fulcrum to re-read its config file, validate it and apply what
changed: listeners that stay keep their sockets, removed backends drain, added
ones start. Prints what changed and exits 0; when the file is invalid, the
running config stays, the reasons are printed to stderr and the exit code is 2;
when the admin API cannot be reached or refuses, exit code 1.

The admin address is --admin, else admin.listen in FILE (-c, which must be
the file that Fulcrum runs), else ${ADMIN}. The token is read from
--token-file, else the FULCRUM_ADMIN_TOKEN environment variable, else FILE's
admin.token or admin.token_file (never from the command line, where other
users could see it). A FILE that cannot be read, or whose YAML is broken, is
an error (exit 2): the default address is not tried.

Options:
  -c, --config FILE     The config file the running Fulcrum was started with
      --admin HOST:PORT Admin API address (default ${ADMIN})
      --token-file FILE File holding the admin bearer token
  -h, --help            Show this help
`,
  upgrade: `Usage: fulcrum upgrade [-c FILE | --admin HOST:PORT] [--token-file FILE]

Ask the running Fulcrum to start the installed version of Fulcrum with the same
command line (as SIGUSR2 does) and hand it every listening socket: once the
new process is ready, the old one stops accepting, drains its open connections
as on SIGTERM and exits. No connection is refused meanwhile. VRRP (ha:), the
BGP announcement (announce:) and session sync (sync:) are handed over: a Master
stays Master, nothing is withdrawn, no client moves. Prints the new pid and
exits 0; exit code 1 when the new process fails to start or to become ready
(the reason is printed; the old one keeps serving), or the admin API cannot be
reached or refuses.
Address and token as for reload.

Options:
  -c, --config FILE     The config file the running Fulcrum was started with
      --admin HOST:PORT Admin API address (default ${ADMIN})
      --token-file FILE File holding the admin bearer token
  -h, --help            Show this help
`,
  status: `Usage: fulcrum status [-c FILE | --admin HOST:PORT] [--token-file FILE] [--json]

Print the state of a running Fulcrum as a table: each service (listen address,
backends up, connections, bytes) and each backend (state, health, operator
state, weight, active connections, peak against max_connections, connections per
second, total connections, failures, bytes, last health
check, with the reason of a failed one). --json prints the admin API's
/api/status document instead. Exit code 1 when the admin API cannot be
reached, 2 when FILE (-c) cannot be read or its YAML is broken (the default
address is not tried: it may be another Fulcrum's). Address and token as for
reload.

Options:
  -c, --config FILE     Config file to read the admin address and token from
      --admin HOST:PORT Admin API address (default ${ADMIN})
      --token-file FILE File holding the admin bearer token
      --json            Print JSON
  -h, --help            Show this help
`,
  'systemd-unit': `Usage: fulcrum systemd-unit [-c FILE]

Print the systemd unit shipped with Fulcrum (config/systemd/fulcrum.service),
with the paths of this node and this fulcrum filled in, for
/etc/systemd/system/fulcrum.service. It runs \`fulcrum run -c FILE\` as
Type=notify (ready, reload, stop, status and watchdog reported to systemd),
as user fulcrum, with the capabilities and hardening the file explains.

Options:
  -c, --config FILE     The config the service runs (default /etc/fulcrum/fulcrum.yaml)
  -h, --help            Show this help
`,
  'reopen-logs': `Usage: fulcrum reopen-logs [-c FILE | --admin HOST:PORT] [--token-file FILE]

Ask the running Fulcrum to reopen its connection log file (connection_log.output
set to a path) after logrotate moved it away, as SIGUSR1 does. Exit code 0 when
reopened, 1 when it cannot be reopened or the admin API cannot be reached.
Address and token as for reload.

Options:
  -c, --config FILE     Config file to read the admin address and token from
      --admin HOST:PORT Admin API address
      --token-file FILE File holding the admin bearer token
  -h, --help            Show this help
`,
  bench: BENCH_USAGE,
  backend: `Usage: fulcrum backend ACTION SERVICE ADDRESS [options] [-c FILE | --admin HOST:PORT] [--token-file FILE]

Change a running Fulcrum's backends through its admin API:
  add SERVICE ADDRESS      add a backend (ADDRESS: ip:port or [v6]:port), with
                           --weight N, --backup, --send-proxy none|v1|v2,
                           --max-connections N, --slow-start DURATION,
                           --health-check JSON (overrides of the service's check)
  remove SERVICE ADDRESS   remove a backend added with add: it drains first (open
                           connections continue; the service's drain_timeout applies)
  drain | enable | maint SERVICE ADDRESS
  weight SERVICE ADDRESS N set its weight (0 to 256)
Every change lasts until the next reload, which rebuilds the backends from the
config file (the file wins, as in HAProxy); \`fulcrum config dump\` prints the
running config, with the added backends, as YAML. Exit code 0 when done, 1 when
the server refuses (the reason is printed) or cannot be reached, 2 on a usage
error. Address and token as for reload.

Options:
  -c, --config FILE     Config file to read the admin address and token from
      --admin HOST:PORT Admin API address (default ${ADMIN})
      --token-file FILE File holding the admin bearer token
  -h, --help            Show this help
`,
  config: `Usage: fulcrum config dump [-c FILE | --admin HOST:PORT] [--token-file FILE]

Print the running Fulcrum's config as YAML: its config file as loaded (comments
kept), with the backends added through the admin API appended to their
services. Valid input to \`fulcrum check\`; save it over the file to keep the
added backends across the next reload. Names resolved by DNS stay names;
weights and states set at run time are not part of it; admin.token is redacted.
Address and token as for reload.

Options:
  -c, --config FILE     Config file to read the admin address and token from
      --admin HOST:PORT Admin API address (default ${ADMIN})
      --token-file FILE File holding the admin bearer token
  -h, --help            Show this help
`,
};

/** Options shared by the commands; each command declares the subset it takes. */
const OPTION_SPECS = {
  config: { type: 'string', short: 'c' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  admin: { type: 'string' },
  'token-file': { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

type OptionName = keyof typeof OPTION_SPECS;

export interface CommandOptions {
  config: string | undefined;
  logLevel: LogLevel | undefined;
  help: boolean;
  admin: string | undefined;
  tokenFile: string | undefined;
  json: boolean;
}

/** With --help: `command`'s usage on stdout, and true (the command then exits 0). */
export function helpShown(command: keyof typeof COMMAND_USAGE, options: { help: boolean }): boolean {
  if (options.help) process.stdout.write(COMMAND_USAGE[command]);
  return options.help;
}

/**
 * Parse a command's arguments (after the command name). Accepts only `allowed`
 * options and no positionals. Throws UsageError naming the bad argument.
 */
export function parseCommandOptions(
  command: CommandName,
  args: readonly string[],
  allowed: readonly OptionName[],
): CommandOptions {
  const options: Partial<Record<OptionName, (typeof OPTION_SPECS)[OptionName]>> = {};
  for (const name of allowed) options[name] = OPTION_SPECS[name];
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...args], options, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new UsageError(describeParseError(err), command);
  }
  const config = values.config;
  const logLevel = values['log-level'];
  if (typeof logLevel === 'string' && !isLogLevel(logLevel)) {
    throw new UsageError(`--log-level: expected one of ${LEVELS}, got '${logLevel}'`, command);
  }
  return {
    config: typeof config === 'string' ? config : undefined,
    logLevel: typeof logLevel === 'string' ? logLevel : undefined,
    help: values.help === true,
    admin: typeof values.admin === 'string' ? values.admin : undefined,
    tokenFile: typeof values['token-file'] === 'string' ? values['token-file'] : undefined,
    json: values.json === true,
  };
}

/** parseArgs' messages are good but long; keep their first sentence. */
function describeParseError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('. ')[0] ?? message;
}
