/**
 * Sizes as people write them: `1073741824`, `500MB`, `10GiB`, `1.5 TiB`. Decimal units are
 * powers of 1000 and binary ones (KiB, MiB...) powers of 1024, as IEC 80000-13 says, so "GB"
 * never quietly means GiB. Small enough to keep here rather than depend on a package that
 * reads "GB" as 1024³.
 */
const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  pb: 1e15,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
  pib: 1024 ** 5,
};

const SIZE = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i;

/** A whole number of bytes, or undefined when `text` is not a size (or not a whole, safe number of bytes). */
export function parseByteSize(text: string): number | undefined {
  const match = SIZE.exec(text.trim());
  if (!match) return undefined;
  const unit = UNITS[(match[2] || 'b').toLowerCase()];
  if (unit === undefined) return undefined;
  const bytes = Number(match[1]) * unit;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** `10.0 GiB`-style, for people reading a quota or a usage. */
export function formatByteSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}
