import { describe, expect, it } from 'vitest';
import { onceUntilDone } from './retry-once.js';

describe('onceUntilDone', () => {
  it('gives concurrent callers one attempt and keeps its success', async () => {
    let runs = 0;
    const init = onceUntilDone(async () => {
      runs++;
      await new Promise((r) => setTimeout(r, 5));
    });
    await Promise.all([init(), init(), init()]);
    await init();
    expect(runs).toBe(1);
  });

  it('forgets a failure: every caller of that attempt sees it, the next caller tries again', async () => {
    let runs = 0;
    const init = onceUntilDone(async () => {
      runs++;
      if (runs === 1) throw new Error('disk full');
    });
    const first = await Promise.allSettled([init(), init()]);
    expect(first.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    await expect(init()).resolves.toBeUndefined();
    await init();
    expect(runs).toBe(2);
  });
});
