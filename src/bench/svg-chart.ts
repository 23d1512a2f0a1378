// An SVG chart of a comparison: one panel per workload, a horizontal bar per
// target at its median with a min–max whisker, the value and the ratio to the
// first target written beside it. Self-contained (no fonts or scripts loaded).
import type { WorkloadComparison } from './compare.js';
import { formatMetric } from './compare.js';

const WIDTH = 760;
const LABEL_WIDTH = 150;
const VALUE_WIDTH = 210;
const BAR_HEIGHT = 18;
const ROW_HEIGHT = 26;
const PANEL_TITLE = 28;
const PANEL_GAP = 18;
const COLORS = ['#4c78a8', '#f58518', '#54a24b', '#e45756', '#72b7b2', '#b279a2', '#9d755d'];

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

export function renderComparisonSvg(comparisons: readonly WorkloadComparison[], title: string): string {
  const parts: string[] = [];
  let y = 40;
  const plotWidth = WIDTH - LABEL_WIDTH - VALUE_WIDTH - 20;
  for (const c of comparisons) {
    const better = c.metric.better === 'higher' ? 'higher is better' : 'lower is better';
    parts.push(`<text x="10" y="${y + 18}" font-size="14" font-weight="bold">${escapeXml(`${c.workload}: median ${c.metric.name} (${better})`)}</text>`);
    y += PANEL_TITLE;
    const scale = Math.max(...c.targets.map((t) => (Number.isFinite(t.max) ? t.max : 0)), 1e-9);
    c.targets.forEach((t, i) => {
      const rowY = y + i * ROW_HEIGHT;
      const color = COLORS[i % COLORS.length]!;
      parts.push(`<text x="${LABEL_WIDTH - 8}" y="${rowY + 14}" font-size="12" text-anchor="end">${escapeXml(t.target)}</text>`);
      if (Number.isFinite(t.median)) {
        const w = (t.median / scale) * plotWidth;
        const x1 = LABEL_WIDTH + (t.min / scale) * plotWidth;
        const x2 = LABEL_WIDTH + (t.max / scale) * plotWidth;
        const mid = rowY + BAR_HEIGHT / 2;
        parts.push(`<rect x="${LABEL_WIDTH}" y="${rowY}" width="${w.toFixed(1)}" height="${BAR_HEIGHT}" fill="${color}"/>`);
        parts.push(`<line x1="${x1.toFixed(1)}" y1="${mid}" x2="${x2.toFixed(1)}" y2="${mid}" stroke="#222" stroke-width="1.5"/>`);
        for (const x of [x1, x2]) parts.push(`<line x1="${x.toFixed(1)}" y1="${mid - 5}" x2="${x.toFixed(1)}" y2="${mid + 5}" stroke="#222" stroke-width="1.5"/>`);
        const ratio = Number.isFinite(t.ratio) ? ` (${t.ratio.toFixed(2)}x)` : '';
        parts.push(`<text x="${LABEL_WIDTH + plotWidth + 10}" y="${rowY + 14}" font-size="12">${escapeXml(formatMetric(t.median, c.metric.unit) + ratio)}</text>`);
      } else {
        parts.push(`<text x="${LABEL_WIDTH + 4}" y="${rowY + 14}" font-size="12" fill="#888">no successful run</text>`);
      }
    });
    y += c.targets.length * ROW_HEIGHT + PANEL_GAP;
  }
  const height = y + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="24" font-size="16" font-weight="bold">${escapeXml(title)}</text>`,
    ...parts,
    `<text x="10" y="${height - 6}" font-size="10" fill="#666">bars: median over rounds; whiskers: min–max; (ratio to ${escapeXml(comparisons[0]?.targets[0]?.target ?? 'the first target')})</text>`,
    `</svg>`,
    '',
  ].join('\n');
}
