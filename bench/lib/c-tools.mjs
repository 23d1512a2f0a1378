// The C load generators and echo servers in bench/tools/, compiled on demand
// into bench/.build/ (git-ignored), so a bench run needs only a C compiler.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { which } from './proc.mjs';

// bench/lib/../tools and ../.build (not REPO_ROOT from proxies.mjs, which imports this module).
const TOOLS = fileURLToPath(new URL('../tools', import.meta.url));
const BUILD = fileURLToPath(new URL('../.build', import.meta.url));
const CFLAGS = ['-std=c17', '-O2', '-Wall', '-Wextra', '-pthread'];

/** Compile bench/tools/NAME.c into bench/.build/NAME when the binary is missing or older than the source; returns its path. */
export function cTool(name, log = (line) => process.stdout.write(`${line}\n`)) {
  const source = join(TOOLS, `${name}.c`);
  const binary = join(BUILD, name);
  if (!existsSync(binary) || statSync(binary).mtimeMs < statSync(source).mtimeMs) {
    if (!which('cc')) throw new Error('cc not found: the load generators and echo servers are C (apt-get install gcc)');
    mkdirSync(BUILD, { recursive: true });
    log(`building ${binary}`);
    execFileSync('cc', [...CFLAGS, '-o', binary, source], { stdio: 'inherit', timeout: 60000 });
  }
  return binary;
}
