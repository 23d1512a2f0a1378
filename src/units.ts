// Numbers for people: a quantity scaled into the largest unit that keeps it
// at or above 1 (9.41 Gbit/s, 1.2 GiB). The callers choose the base, the
// unit names and the digits.

/** `value` divided by `base` until it is below `base` or the units run out; `index` is the unit's place in `units`. */
export function scaleToUnit(value: number, base: number, units: readonly string[]): { value: number; unit: string; index: number } {
  let scaled = value;
  let index = 0;
  while (scaled >= base && index < units.length - 1) {
    scaled /= base;
    index++;
  }
  return { value: scaled, unit: units[index]!, index };
}
