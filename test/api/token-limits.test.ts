/**
 * Per-token limits against a running service: a team whose token carries
 * `limits: {step-timeout: 5s}` has its RUN killed at ~5 s, while another
 * team's build of the very same Dockerfile, at the same time on the same
 * worker, runs to the end: two builds share a step only under the same limits.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildliteClient } from '../../api/index.js';
import { collectResuming, startServiceWithBase, TOKENS, type ServiceWithBase } from '../helpers/service.js';
import { tarOf } from '../helpers/tar.js';

const FAST = 'fast-token-0123456789abcdef';

describe('per-token limits, end to end', () => {
  let env: ServiceWithBase;
  beforeAll(async () => {
    env = await startServiceWithBase({ workers: 1, concurrency: 2, tokens: [`{ token: ${FAST}, client: fast, limits: { step-timeout: 5s } }`] });
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('a token with step-timeout 5s is stopped at its limit; the same build by another token succeeds beside it', async () => {
    const fast = new BuildliteClient(env.svc.addr, FAST);
    const alice = new BuildliteClient(env.svc.addr, TOKENS.alice);
    try {
      const dockerfile = `FROM ${env.base}\nRUN sleep 8 && echo slept\n`;
      const [a, b] = await Promise.all([fast.submit({ dockerfile }, tarOf({ x: '1' })), alice.submit({ dockerfile }, tarOf({ x: '1' }))]);
      const [fastEvents, aliceEvents] = await Promise.all([collectResuming(fast, a.buildId), collectResuming(alice, b.buildId)]);
      expect(fastEvents.at(-1)).toMatchObject({
        type: 'error',
        error: { code: 'LIMIT_EXCEEDED', range: { startLine: 2 }, details: { limit: 'stepTimeoutMs', value: 5000 } },
      });
      expect((fastEvents.at(-1) as { error: { message: string } }).error.message).toMatch(/step timeout of 5s/);
      expect(aliceEvents.at(-1), JSON.stringify(aliceEvents.at(-1))).toMatchObject({ type: 'result' });
      expect(aliceEvents.filter((e) => e.type === 'log').map((e) => (e as { data: string }).data).join('')).toContain('slept');
      const [fi, ai] = await Promise.all([fast.get(a.buildId), alice.get(b.buildId)]);
      expect(fi.state).toBe('failed');
      expect(ai.state).toBe('succeeded');
      expect(fi.worker).toBe(ai.worker);
      // Killed at its limit, not when the sleep ended.
      expect(fi.finishedAt - fi.startedAt).toBeLessThan(8000);
    } finally {
      fast.close();
      alice.close();
    }
  });
});
