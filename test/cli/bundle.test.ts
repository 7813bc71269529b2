import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';

/**
 * `push` runs from a bundle of its own (scripts/bundle.mjs): a re-push is
 * mostly Node's start, and loading the whole CLI was a sixth of it. The
 * bundle must keep holding only what a push needs, which one import of an
 * index.ts that drags in the builder would quietly undo.
 */
describe('the push bundle', () => {
  const bundleDir = path.join(REPO_ROOT, 'dist', 'bundle');
  /** The source files esbuild put into a bundle (it marks each with a `// path` line). */
  const modulesOf = async (file: string) =>
    new Set((await readFile(path.join(bundleDir, file), 'latin1')).match(/^\/\/ [\w./-]+\.ts$/gm)?.map((l) => l.slice(3)) ?? []);

  it('holds the push path and none of the build machinery', async () => {
    const push = await modulesOf('cli-push.cjs');
    const all = await modulesOf('cli.cjs');
    for (const m of ['builder/push-tagged.ts', 'registry-client/push.ts', 'cache/local-store.ts', 'cli/commands/push.ts', 'cli/commands/help.ts']) expect(push).toContain(m);
    for (const m of ['builder/solver/solver.ts', 'builder/index.ts', 'builder/image/export-layout.ts', 'cli/commands/build.ts']) {
      expect(all).toContain(m);
      expect(push).not.toContain(m);
    }
    expect(push.size).toBeLessThan(all.size / 4);
  });

  it('is the one the bin runs for push, and only for push', async () => {
    const bin = await readFile(path.join(bundleDir, 'main.js'), 'utf8');
    expect(bin).toMatch(/commands: \{ push: \{ file: "cli-push\.cjs"/);
    expect(bin).toMatch(/all: \{ file: "cli\.cjs"/);
  });
});
