// `fulcrum check -c FILE`: validate a config without starting anything, and
// read what the running Fulcrum would read later (health-check passwords from
// files and environment variables), so that what fails at run time fails here.
import { readFile } from 'node:fs/promises';
import { secretSourceIssues } from '../config/secret-sources.js';
import { describeUdpDatapath, kernelDatapathBlocker } from '../config/udp-datapath.js';
import { YamlSource } from '../config/source.js';
import { kernelRelaySupport, kernelRelayUnavailableNotice, relayInUse } from '../engine/relay-plan.js';
import { formatIssue } from '../errors.js';
import { EXIT_OK, EXIT_USAGE } from './exit-codes.js';
import { requiredConfig } from './config-file.js';
import { helpShown, parseCommandOptions } from './usage.js';

export async function checkCommand(args: readonly string[]): Promise<number> {
  const options = parseCommandOptions('check', args, ['config', 'help']);
  if (helpShown('check', options)) return EXIT_OK;
  const config = await requiredConfig('check', options.config);
  if (config === undefined) return EXIT_USAGE;
  // The file was just read and is valid: read it again for positions.
  const source = new YamlSource(await readFile(options.config!, 'utf8'), options.config!);
  const issues = await secretSourceIssues(source, config.file);
  if (issues.length > 0) {
    process.stderr.write(issues.map((i) => `${formatIssue(i)}\n`).join(''));
    return EXIT_USAGE;
  }
  // datapath: kernel on a service the kernel datapath cannot carry would fail at start: fail here.
  const impossible = config.services.filter((s) => s.protocol === 'udp' && s.udp.datapath === 'kernel' && kernelDatapathBlocker(s) !== undefined);
  if (impossible.length > 0) {
    process.stderr.write(impossible.map((s) => `${options.config}: service ${s.name}: datapath: kernel cannot run: ${kernelDatapathBlocker(s)}\n`).join(''));
    return EXIT_USAGE;
  }
  const n = config.services.length;
  process.stdout.write(`${options.config}: OK (${n} ${n === 1 ? 'service' : 'services'})\n`);
  // How each service's bytes will move on this machine (its kernel and
  // privileges): the relay of a TCP service (README, Kernel relay), the
  // datapath of a UDP one (README, Kernel UDP datapath). In config order.
  const support = kernelRelaySupport();
  for (const service of config.services) {
    const line =
      service.protocol === 'udp' ? describeUdpDatapath(service) : `  ${service.name} (tcp ${service.listen.text}): relay ${relayInUse(service, support)}`;
    process.stdout.write(`${line}\n`);
  }
  const notice = kernelRelayUnavailableNotice(config.services, support);
  if (notice !== undefined) process.stdout.write(`  note: ${notice}\n`);
  return EXIT_OK;
}
