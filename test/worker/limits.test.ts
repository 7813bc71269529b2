import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildliteClient } from '../../api/index.js';
import { mountsUnder } from '../../core/mounter.js';
import { collectResuming, runcContainers, startServiceWithBase, TOKENS, type Service, type ServiceWithBase } from '../helpers/service.js';
import { tarOf } from '../helpers/tar.js';

const MiB = 1024 * 1024;

/** A worker started with its own limits (`buildlite worker --memory 256MiB --step-timeout 15s`), real Redis and runc.
 * The step timeout leaves a memory bomb time to reach its limit on a loaded machine. */
describe('build service: the worker enforces its own limits', () => {
  let env: ServiceWithBase;
  let svc: Service;
  let base: string;

  beforeAll(async () => {
    env = await startServiceWithBase({ workers: 1, workerArgs: ['--memory', '256MiB', '--step-timeout', '15s'] });
    ({ svc, base } = env);
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('a memory bomb fails with the OOM message naming the limit and its line; the worker survives and runs the next build', async () => {
    const c = new BuildliteClient(svc.addr, TOKENS.alice);
    try {
      const bomb = await c.submit({ dockerfile: `FROM ${base}\nRUN echo start; awk 'BEGIN { s = "xxxxxxxxxxxxxxxx"; while (1) s = s s }'\n` }, tarOf({ a: '1' }));
      const events = await collectResuming(c, bomb.buildId);
      const last = events.at(-1);
      expect(last).toMatchObject({
        type: 'error',
        error: {
          code: 'LIMIT_EXCEEDED',
          message: 'RUN exceeded the memory limit of 256 MiB (OOM-killed)',
          range: { startLine: 2 },
          details: { limit: 'memoryBytes', value: 256 * MiB, oomKilled: true },
        },
      });
      expect((await c.get(bomb.buildId)).state).toBe('failed');

      const worker = svc.workers[0]!;
      expect(worker.child.exitCode).toBeNull();
      expect(await runcContainers(worker.root)).toEqual([]);
      expect(await mountsUnder(worker.root)).toEqual([]);

      const next = await c.submit({ dockerfile: `FROM ${base}\nRUN echo alive > /alive\n` }, tarOf({ b: '1' }));
      expect((await collectResuming(c, next.buildId)).at(-1)).toMatchObject({ type: 'result' });
      expect((await c.get(next.buildId)).worker).toBe('w1');
      expect(worker.child.exitCode).toBeNull();
    } finally {
      c.close();
    }
  });

  it("a step past the worker's step timeout fails with LIMIT_EXCEEDED naming it", async () => {
    const c = new BuildliteClient(svc.addr, TOKENS.bob);
    try {
      const { buildId } = await c.submit({ dockerfile: `FROM ${base}\nRUN echo x\nRUN sleep 600\n` }, tarOf({ c: '1' }));
      const last = (await collectResuming(c, buildId)).at(-1);
      expect(last).toMatchObject({
        type: 'error',
        error: { code: 'LIMIT_EXCEEDED', message: 'RUN exceeded the step timeout of 15s (killed with every process it started)', range: { startLine: 3 }, details: { limit: 'stepTimeoutMs', value: 15_000 } },
      });
    } finally {
      c.close();
    }
  }, 60_000);
});
