// bench/RESULTS.md: one header, then one section per benchmark. A benchmark
// run with --write replaces its own section (between its markers) and leaves
// every other section as it was.

import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { commandLine } from './machine.mjs';

/** Absolute path of bench/RESULTS.md. */
export const RESULTS_FILE = fileURLToPath(new URL('../RESULTS.md', import.meta.url));

/** Written only when RESULTS.md does not exist yet. */
const DEFAULT_HEADER = `# Benchmark results

Recorded by the scripts in this folder with \`--write\`; see README.md for how to run them.
`;

const startMarker = (key) => `<!-- bench:${key}:start -->`;
const endMarker = (key) => `<!-- bench:${key}:end -->`;

/**
 * Put `body` (Markdown, without markers) in the section named `key` of `file`:
 * replace the section if present, append it otherwise. Creates the file with a
 * default header when missing. Returns 'replaced' or 'appended'.
 */
export function writeSection(key, body, file = RESULTS_FILE) {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : DEFAULT_HEADER;
  const block = `${startMarker(key)}\n${body.trim()}\n${endMarker(key)}`;
  const start = text.indexOf(startMarker(key));
  const end = text.indexOf(endMarker(key));
  if (start !== -1 && end > start) {
    writeFileSync(file, text.slice(0, start) + block + text.slice(end + endMarker(key).length));
    return 'replaced';
  }
  writeFileSync(file, `${text.trimEnd()}\n\n${block}\n`);
  return 'appended';
}

/**
 * A benchmark run's section: `intro` (its title and what was measured, as
 * Markdown lines), then the date, the exact command and the `facts` about
 * the machine ([name, value] pairs), then the `report`. Written with
 * writeSection; returns 'replaced' or 'appended'.
 */
export function writeRunSection(key, intro, facts, report, file = RESULTS_FILE) {
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  return writeSection(key, [
    ...intro,
    `- date: ${date}`,
    `- command: \`${commandLine()}\``,
    ...facts.map(([k, v]) => `- ${k}: ${v}`),
    '',
    report,
  ].join('\n'), file);
}
