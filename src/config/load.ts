// Loading a config file: read, parse YAML with positions, validate, and return
// the typed FulcrumConfig, or throw one ConfigError listing every issue as
// `file:line:column: message`. A config that fails here is never applied.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { YamlSource } from './source.js';
import type { FulcrumConfig } from './types.js';
import { validateConfig } from './validate.js';

/**
 * Parse and validate config `text`. `file` names it in issues (as given) and,
 * resolved to an absolute path, becomes `config.file`. Synchronous; throws
 * ConfigError.
 */
export function parseConfig(text: string, file: string): FulcrumConfig {
  const source = new YamlSource(text, file);
  const syntax = [...source.syntaxIssues(), ...source.aliasIssues()];
  // After a syntax error (or a dangling alias) the document is a guess; validating it would only add noise.
  if (syntax.length > 0) throw new ConfigError(sortIssues(syntax));
  const duplicates = source.duplicateKeyIssues();
  const result = validateConfig(source.toData(), source);
  const issues = [...duplicates, ...(result.ok ? [] : result.issues)];
  if (issues.length > 0 || !result.ok) throw new ConfigError(sortIssues(issues));
  return { file: resolve(file), text, ...result.config };
}

/** Read `file` and parseConfig() it. An unreadable file is a ConfigError naming the path and the errno. */
export async function loadConfig(file: string): Promise<FulcrumConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const reason = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message;
    throw new ConfigError([{ file, line: 0, column: 0, message: `cannot read config: ${reason} (${e.code ?? 'error'})` }], { cause: err });
  }
  return parseConfig(text, file);
}

/** File order, each issue once. */
function sortIssues(issues: readonly ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues
    .filter((i) => {
      const key = `${i.line}:${i.column}:${i.message}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    })
    .sort((a, b) => a.line - b.line || a.column - b.column);
}
