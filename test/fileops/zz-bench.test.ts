import { mkdirSync, writeFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { it } from 'vitest';
import { ContextHasher } from '/work/main/builder/solver/context-sums.js';
it('bench', async () => {
  const ctx = path.join(os.tmpdir(), 'csb-ctx'); rmSync(ctx, {recursive:true, force:true});
  for (let i = 0; i < 50; i++) { mkdirSync(path.join(ctx, `many/d${i}`), { recursive: true });
    for (let j = 0; j < 100; j++) writeFileSync(path.join(ctx, `many/d${i}/f${j}.txt`), `${i}-${j}\n`); }
  const h = new ContextHasher(path.join(os.tmpdir(), 'csb-state-' + Date.now()));
  let t = performance.now(); await h.checksumForCopy(ctx, ['many'], {excludes: [], ignore: []}); console.log('cold', performance.now() - t);
  t = performance.now(); await h.checksumForCopy(ctx, ['many'], {excludes: [], ignore: []}); console.log('warm', performance.now() - t);
  t = performance.now(); await h.checksumForCopy(ctx, ['many'], {excludes: [], ignore: ['*.md', '!x']}); console.log('warm+ignore', performance.now() - t);
  const { PathMatcher } = await import('/work/main/core/ignore.js');
  const m = new PathMatcher([]); t = performance.now(); for (let i=0;i<5000;i++) m.matches('many/d1/f'+i+'.txt'); console.log('matches', performance.now()-t);
});
