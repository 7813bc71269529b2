import { CodedError } from './errors.js';

/**
 * Byte counts for people: binary units, one decimal, none when the count is a
 * whole number of its unit (limits read "4 MiB", sizes "10.0 MiB").
 */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  if (u === 0) return `${n} B`;
  return `${Number.isInteger(v) ? String(v) : v.toFixed(1)} ${units[u]}`;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1024, kb: 1024, kib: 1024,
  m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3,
  t: 1024 ** 4, tb: 1024 ** 4, tib: 1024 ** 4,
};

/** `512MB`, `10GiB`, `1.5g`, `4096` → bytes (binary units, as docker's --keep-storage). */
export function parseBytes(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new CodedError('INVALID_ARGUMENT', `not a size: ${JSON.stringify(text.slice(0, 40))} (want e.g. 512MB or 10GB)`);
  return Math.floor(Number(m[1]) * unit);
}
