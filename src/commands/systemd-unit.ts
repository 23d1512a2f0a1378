// `fulcrum systemd-unit [-c FILE]`: print the systemd unit shipped in the
// package (config/systemd/fulcrum.service) with the paths of this node, this
// fulcrum and the config filled in, ready for /etc/systemd/system/.
import { readFileSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXIT_OK } from './exit-codes.js';
import { helpShown, parseCommandOptions } from './usage.js';

/** The config a unit runs with when -c is not given (ConfigurationDirectory=fulcrum). */
export const DEFAULT_UNIT_CONFIG = '/etc/fulcrum/fulcrum.yaml';
/** The template in the package, from dist/commands/. */
const TEMPLATE = new URL('../../config/systemd/fulcrum.service', import.meta.url);

export async function systemdUnitCommand(args: readonly string[]): Promise<number> {
  const options = parseCommandOptions('systemd-unit', args, ['config', 'help']);
  if (helpShown('systemd-unit', options)) return EXIT_OK;
  const cli = realpathSync(fileURLToPath(new URL('../cli.js', import.meta.url)));
  process.stdout.write(
    systemdUnit({ node: process.execPath, fulcrum: cli, config: options.config === undefined ? DEFAULT_UNIT_CONFIG : resolve(options.config) }),
  );
  return EXIT_OK;
}

/** The unit text with @NODE@, @FULCRUM@ and @CONFIG@ replaced (each quoted for systemd when it holds a space). */
export function systemdUnit(paths: { node: string; fulcrum: string; config: string }): string {
  const template = readFileSync(TEMPLATE, 'utf8');
  return template
    .replaceAll('@NODE@', unitWord(paths.node))
    .replaceAll('@FULCRUM@', unitWord(paths.fulcrum))
    .replaceAll('@CONFIG@', unitWord(paths.config));
}

/** One word of an Exec= line: quoted when it holds a space, a quote or a backslash (systemd.service "Command lines"). */
function unitWord(word: string): string {
  if (!/[\s"'\\%$]/.test(word)) return word;
  return `"${word.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%').replace(/\$/g, '$$$$')}"`;
}
