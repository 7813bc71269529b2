/** Reading a process's /metrics in tests: the Prometheus text format, one sample per line. */

export async function scrape(addr: string): Promise<string> {
  const res = await fetch(`http://${addr}/metrics`);
  if (res.status !== 200) throw new Error(`GET http://${addr}/metrics: ${res.status}`);
  return res.text();
}

/**
 * The value of the sample `name{labels}` (labels matched exactly, in any
 * order); undefined when the series is not exported at all.
 */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(',');
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = (m[2] ?? '').split(',').filter(Boolean).sort().join(',');
    if (got === want) return Number(m[3]);
  }
  return undefined;
}

/** The sum of one sample over several processes (workers each count their own builds). */
export function sampleSum(texts: readonly string[], name: string, labels: Record<string, string> = {}): number {
  return texts.reduce((sum, t) => sum + (sample(t, name, labels) ?? 0), 0);
}
