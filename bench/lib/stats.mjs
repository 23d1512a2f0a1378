// Summary statistics for small samples (a handful of rounds per target).

/** Median of a non-empty array of numbers (mean of the two middle values for even counts); NaN if empty. */
export function median(values) {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Smallest value; NaN if empty. */
export function min(values) {
  return values.length ? Math.min(...values) : Number.NaN;
}

/** Largest value; NaN if empty. */
export function max(values) {
  return values.length ? Math.max(...values) : Number.NaN;
}

/** `{ n, median, min, max }` of a sample. */
export function summarize(values) {
  return { n: values.length, median: median(values), min: min(values), max: max(values) };
}

/** `a / b` formatted with two decimals, or '–' when either side is missing. */
export function ratio(a, b) {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? (a / b).toFixed(2) : '–';
}

/** A number with `digits` decimals, or '–' when it is not finite. */
export function fixed(value, digits = 2) {
  return Number.isFinite(value) ? value.toFixed(digits) : '–';
}

/** The `p`th percentile (0..100, nearest rank) of the finite numbers in `values`; NaN when there are none. */
export function percentile(values, p) {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))];
}
