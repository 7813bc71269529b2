/**
 * Service benchmark (not a test): submit-to-first-step latency on loopback,
 * and throughput of 20 small builds with 1 vs 2 worker processes.
 *
 *   npx tsc -p tsconfig.json && npx vitest run --config bench/service/vitest.config.ts
 *
 * Prints a table and writes bench/results/service-<stamp>.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { it } from 'vitest';
import { BuildliteClient } from '../../api/index.js';
import { pushBusyboxBase } from '../../test/helpers/base-image.js';
import { REPO_ROOT } from '../../test/helpers/cli.js';
import { startRedis } from '../../test/helpers/redis.js';
import { startRegistry } from '../../test/helpers/registry.js';
import { startService, TOKENS } from '../../test/helpers/service.js';
import { tarOf } from '../../test/helpers/tar.js';

const LATENCY_RUNS = 15;
const BATCH = 20;

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function runToEnd(c: BuildliteClient, dockerfile: string, onFirstStep?: () => void): Promise<void> {
  const { buildId } = await c.submit({ dockerfile }, tarOf({ f: dockerfile }));
  let first = true;
  for await (const ev of c.watch(buildId, 0)) {
    if (first && ev.type === 'vertex' && ev.state === 'started') {
      first = false;
      onFirstStep?.();
    }
    if (ev.type === 'error') throw new Error(ev.error.message);
  }
}

it('service benchmark', async () => {
  const redis = await startRedis();
  const registry = await startRegistry();
  const results: Record<string, unknown> = {};
  try {
    await pushBusyboxBase(registry.host);
    const base = `${registry.host}/library/busybox:latest`;
    const n = () => Math.random().toString(36).slice(2);

    // Latency: one worker, sequential builds, after one warm-up (base image pulled, processes warm).
    {
      const svc = await startService({ redisUrl: redis.url, workers: 1, concurrency: 1 });
      const c = new BuildliteClient(svc.addr, TOKENS.alice);
      try {
        await runToEnd(c, `FROM ${base}\nRUN echo warm-${n()}\n`);
        const lat: number[] = [];
        for (let i = 0; i < LATENCY_RUNS; i++) {
          const t0 = performance.now();
          await runToEnd(c, `FROM ${base}\nRUN echo lat-${n()}\n`, () => lat.push(performance.now() - t0));
        }
        results['latencyMs'] = { p50: pct(lat, 50), p90: pct(lat, 90), min: Math.min(...lat), runs: lat.length };
      } finally {
        c.close();
        await svc.stop();
      }
    }

    // Throughput: 20 small builds (a RUN of ~0.5 s each) with 1 worker vs 2, concurrency 1 each.
    for (const workers of [1, 2]) {
      const svc = await startService({ redisUrl: redis.url, workers, concurrency: 1 });
      const c = new BuildliteClient(svc.addr, TOKENS.bob);
      try {
        await runToEnd(c, `FROM ${base}\nRUN echo warm-${n()}\n`);
        const t0 = performance.now();
        await Promise.all(Array.from({ length: BATCH }, (_, i) => runToEnd(c, `FROM ${base}\nRUN echo t${i}-${n()}; sleep 0.5\n`)));
        const s = (performance.now() - t0) / 1000;
        results[`throughput${workers}w`] = { seconds: s, buildsPerMinute: (BATCH / s) * 60 };
      } finally {
        c.close();
        await svc.stop();
      }
    }
  } finally {
    await registry.stop();
    await redis.stop();
  }
  const t1 = results['throughput1w'] as { seconds: number };
  const t2 = results['throughput2w'] as { seconds: number };
  results['speedup2v1'] = t1.seconds / t2.seconds;
  const out = path.join(REPO_ROOT, 'bench/results', `service-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`\nservice benchmark\n${JSON.stringify(results, null, 2)}\n(written to ${out})\n`);
});
