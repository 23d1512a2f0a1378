// A parsed YAML config file that still knows where every value came from, so
// each config issue can point at `file:line:column`. Paths are the keys and
// list indexes from the document root, the same ones the validators use.
import { LineCounter, isAlias, isMap, isPair, isScalar, isSeq, parseDocument, visit, type Document, type Node } from 'yaml';
import { ConfigError, type ConfigIssue } from '../errors.js';

export type ConfigPath = readonly (string | number)[];

/** Whether an issue points at a mapping entry's key (unknown or duplicate key) or at its value. */
export type Anchor = 'key' | 'value';

interface Located {
  node: Node | null;
  /** The key node of the last path segment, when the path ends in a mapping entry. */
  key: Node | null;
  /** True when the whole path was found (else `node` is the nearest ancestor). */
  exact: boolean;
}

export class YamlSource {
  readonly file: string;
  readonly text: string;
  readonly doc: Document;
  readonly #lines: LineCounter;

  /** Parse `text`. Syntax errors are kept in `syntaxIssues()`; this never throws on bad YAML. */
  constructor(text: string, file: string) {
    this.file = file;
    this.text = text;
    this.#lines = new LineCounter();
    // uniqueKeys off: duplicate keys are reported by duplicateKeyIssues() with
    // both positions, which says more than the parser's "Map keys must be unique".
    this.doc = parseDocument(text, { lineCounter: this.#lines, prettyErrors: false, uniqueKeys: false });
  }

  /** YAML syntax errors, one issue each. When there are any, the document is not worth validating. */
  syntaxIssues(): ConfigIssue[] {
    return this.doc.errors.map((err) => {
      // An unclosed quote is found at the end of the file; the quote that opened it is where the fix goes.
      const opened = err.code === 'MISSING_CHAR' ? this.#quotedScalarAround(err.pos[0]) : undefined;
      if (opened !== undefined) {
        const quote = this.text[opened] ?? '"';
        return this.#issueAt(opened, `YAML syntax error: the string that starts here has no closing ${quote}`);
      }
      return this.#issueAt(err.pos[0], `YAML syntax error: ${plainYamlMessage(err.message)}`);
    });
  }

  /** Start offset of the quoted scalar that reaches `offset`, if any. */
  #quotedScalarAround(offset: number): number | undefined {
    let start: number | undefined;
    visit(this.doc, {
      Scalar: (_key, node) => {
        const range = node.range;
        const quoted = node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE';
        if (quoted && range && range[0] <= offset && offset <= range[2]) start = range[0];
      },
    });
    return start;
  }

  /** Keys that appear twice in one mapping, anywhere in the document, reported at the second one. */
  duplicateKeyIssues(): ConfigIssue[] {
    const issues: ConfigIssue[] = [];
    visit(this.doc, {
      Map: (_key, map) => {
        const first = new Map<string, Node>();
        for (const pair of map.items) {
          if (!isScalar(pair.key)) continue;
          const name = String(pair.key.value);
          const earlier = first.get(name);
          if (earlier === undefined) first.set(name, pair.key);
          else issues.push(this.#issueAt(pair.key.range?.[0] ?? 0, `duplicate key "${name}" (first at line ${this.#lineOf(earlier)})`));
        }
      },
    });
    return issues;
  }

  /** Aliases (`*name`) with no anchor (`&name`) before them; a bare `*` often means a quoted "*:port" was meant. */
  aliasIssues(): ConfigIssue[] {
    const issues: ConfigIssue[] = [];
    visit(this.doc, {
      Alias: (_key, node) => {
        if (node.resolve(this.doc) === undefined) {
          issues.push(
            this.#issueAt(
              node.range?.[0] ?? 0,
              `unknown alias *${node.source}: no anchor &${node.source} before it (to write a value that starts with *, quote it: "*${node.source}")`,
            ),
          );
        }
      },
    });
    return issues;
  }

  /**
   * The plain data, as the schema sees it: mappings become objects, later
   * duplicate keys win. Call only when syntaxIssues() and aliasIssues() are
   * empty. Throws ConfigError when aliases expand too much (a YAML bomb).
   */
  toData(): unknown {
    try {
      return this.doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new ConfigError([this.#issueAt(0, `cannot expand YAML aliases: ${reason}`)], { cause: err });
    }
  }

  /** An issue at the value (or key) that `path` names; at its nearest existing ancestor when it is absent. */
  issue(path: ConfigPath, message: string, anchor: Anchor = 'value'): ConfigIssue {
    const found = this.#locate(path);
    const node = anchor === 'key' && found.exact && found.key !== null ? found.key : found.node;
    return this.#issueAt(node?.range?.[0] ?? 0, message);
  }

  /** 1-based line of the value at `path` (of its nearest ancestor when absent). */
  line(path: ConfigPath): number {
    const node = this.#locate(path).node;
    return this.#lines.linePos(node?.range?.[0] ?? 0).line;
  }

  #lineOf(node: Node): number {
    return this.#lines.linePos(node.range?.[0] ?? 0).line;
  }

  #locate(path: ConfigPath): Located {
    let node: Node | null = this.#resolve(this.doc.contents);
    let key: Node | null = null;
    for (const segment of path) {
      let next: Node | null | undefined;
      let nextKey: Node | null = null;
      if (isMap(node)) {
        // The last pair with this key: the one whose value toJS() kept.
        const pair = node.items.findLast((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(segment));
        if (pair !== undefined) {
          next = pair.value as Node | null;
          nextKey = pair.key as Node;
          // `key:` with nothing after it: point at the key, not at the empty spot after the colon.
          if (next === null || isEmptyScalar(next)) next = nextKey;
        }
      } else if (isSeq(node)) {
        next = node.items[Number(segment)] as Node | undefined;
      }
      if (next === undefined || next === null) return { node, key, exact: false };
      node = this.#resolve(next);
      key = nextKey;
    }
    return { node, key, exact: true };
  }

  #resolve(node: unknown): Node | null {
    if (isAlias(node)) return (node.resolve(this.doc) as Node | undefined) ?? node;
    return (node as Node | null) ?? null;
  }

  #issueAt(offset: number, message: string): ConfigIssue {
    // A parser error at end of input points one past the last character; show it on the last line instead.
    let at = Math.max(0, offset);
    if (at >= this.text.length && this.text.endsWith('\n')) at = Math.max(0, this.text.length - 1);
    const pos = this.#lines.linePos(at);
    return { file: this.file, line: pos.line, column: pos.col, message };
  }
}

function isEmptyScalar(node: unknown): boolean {
  return isScalar(node) && node.value === null && node.range !== undefined && node.range !== null && node.range[0] === node.range[1];
}

/** The parser's message without the code excerpt it may append after a blank line. */
function plainYamlMessage(message: string): string {
  const first = message.split('\n\n')[0] ?? message;
  return first.replace(/ at line \d+, column \d+:?$/, '').trim();
}
