// A strict reader of the Prometheus text exposition format (0.0.4), so tests
// check that /metrics is what a Prometheus server would accept, not just that
// some lines look right: HELP and TYPE precede a family's samples, sample names
// belong to their family (_bucket/_sum/_count for histograms), label values
// are correctly escaped, values are floats, and no series appears twice.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const SUFFIXES: Record<Family['type'], string[]> = {
  counter: [''],
  gauge: [''],
  untyped: [''],
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
};

/** Parse `text`; throws an Error naming the line on anything malformed. */
export function parsePrometheus(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  let current: Family | undefined;
  const lines = text.split('\n');
  if (lines.at(-1) !== '') throw new Error('the exposition must end with a newline');
  lines.forEach((line, i) => {
    const fail = (why: string): never => {
      throw new Error(`line ${i + 1}: ${why}: ${JSON.stringify(line)}`);
    };
    if (line === '') return;
    if (line.startsWith('# HELP ')) {
      const [, name, help = ''] = /^# HELP (\S+) ?(.*)$/.exec(line) ?? fail('bad HELP');
      if (!NAME.test(name!)) fail('bad metric name');
      if (families.has(name!)) fail('second HELP for a family');
      current = { name: name!, help, type: 'untyped', samples: [] };
      families.set(name!, current);
      return;
    }
    if (line.startsWith('# TYPE ')) {
      const [, name, type] = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line) ?? fail('bad TYPE');
      if (current?.name !== name) fail('TYPE without its HELP just before');
      if (current!.samples.length > 0) fail('TYPE after samples');
      current!.type = type as Family['type'];
      return;
    }
    if (line.startsWith('#')) return;
    const sample = parseSample(line, fail);
    if (!current) return fail('sample before any HELP/TYPE');
    if (!SUFFIXES[current.type].some((suffix) => sample.name === current!.name + suffix)) fail(`sample does not belong to family ${current.name}`);
    const id = `${sample.name}{${Object.entries(sample.labels).sort().map(([k, v]) => `${k}=${v}`).join(',')}}`;
    if (seen.has(id)) fail('duplicate series');
    seen.add(id);
    current.samples.push(sample);
  });
  return families;
}

function parseSample(line: string, fail: (why: string) => never): Sample {
  const nameEnd = line.search(/[{ ]/);
  if (nameEnd <= 0) fail('no sample name');
  const name = line.slice(0, nameEnd);
  if (!NAME.test(name)) fail('bad sample name');
  const labels: Record<string, string> = {};
  let at = nameEnd;
  if (line[at] === '{') {
    at++;
    while (line[at] !== '}') {
      const eq = line.indexOf('=', at);
      if (eq < 0) fail('label without =');
      const label = line.slice(at, eq);
      if (!LABEL.test(label)) fail(`bad label name ${label}`);
      if (line[eq + 1] !== '"') fail('label value not quoted');
      let value = '';
      let j = eq + 2;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\') {
          const next = line[++j];
          if (next === 'n') value += '\n';
          else if (next === '\\' || next === '"') value += next;
          else fail('bad escape in label value');
        } else value += line[j];
      }
      if (j >= line.length) fail('unterminated label value');
      if (label in labels) fail(`label ${label} twice`);
      labels[label] = value;
      at = j + 1;
      if (line[at] === ',') at++;
      else if (line[at] !== '}') fail('expected , or } after a label');
    }
    at++;
  }
  if (line[at] !== ' ') fail('expected a space before the value');
  const [valueText, timestamp, ...rest] = line.slice(at + 1).split(' ');
  if (rest.length > 0 || (timestamp !== undefined && !/^-?\d+$/.test(timestamp))) fail('trailing garbage');
  // Prometheus reads values with Go's strconv.ParseFloat: NaN and Inf in any letter case.
  const special = /^(nan|[+-]?inf)$/i.test(valueText ?? '') ? valueText!.toLowerCase() : undefined;
  const value = special === 'nan' ? NaN : special !== undefined ? (special.startsWith('-') ? -Infinity : Infinity) : Number(valueText);
  if (valueText === undefined || valueText === '' || (Number.isNaN(value) && special !== 'nan')) fail('bad value');
  return { name, labels, value };
}

/** The value of the one sample of `family` (with `name`, default the family's) whose labels include `labels`. */
export function sampleValue(families: Map<string, Family>, family: string, labels: Record<string, string> = {}, name = family): number | undefined {
  const matches = families.get(family)?.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) ?? [];
  if (matches.length > 1) throw new Error(`${family}${JSON.stringify(labels)} matches ${matches.length} series`);
  return matches[0]?.value;
}
