// Tables printed as aligned Markdown: readable in a terminal, valid in RESULTS.md.

/**
 * Render rows as a Markdown pipe table with padded columns.
 * `align` is one of 'l' | 'r' per column (default: first column left, others right).
 * Cells are converted with String().
 */
export function markdownTable(headers, rows, align) {
  const cols = headers.length;
  const al = align ?? headers.map((_, i) => (i === 0 ? 'l' : 'r'));
  const cells = [headers, ...rows].map((r) => r.map((c) => String(c)));
  const width = headers.map((_, i) => Math.max(3, ...cells.map((r) => (r[i] ?? '').length)));
  const pad = (text, i) => (al[i] === 'r' ? text.padStart(width[i]) : text.padEnd(width[i]));
  const line = (r) => `| ${Array.from({ length: cols }, (_, i) => pad(r[i] ?? '', i)).join(' | ')} |`;
  const rule = `|${width.map((w, i) => (al[i] === 'r' ? `${'-'.repeat(w + 1)}:` : `:${'-'.repeat(w + 1)}`)).join('|')}|`;
  return [line(cells[0]), rule, ...cells.slice(1).map(line)].join('\n');
}
