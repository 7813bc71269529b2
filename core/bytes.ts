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
