/**
 * The import-rule checker must fail on a forbidden import and pass on the real
 * tree. It runs dependency-cruiser with the project's own config, against a
 * fixture tree laid out like dist/, and against a fresh compile of the sources.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const depcruise = path.join(repo, 'node_modules/.bin/depcruise');
const tsc = path.join(repo, 'node_modules/.bin/tsc');
const config = path.join(repo, '.dependency-cruiser.cjs');

interface Violation {
  rule: { name: string };
  from: string;
  to: string;
}

function run(cmd: string, args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs depcruise on those of `dirs` that exist, as scripts/depcheck.sh does. */
async function cruise(cwd: string, dirs: string[]): Promise<{ violations: Violation[] }> {
  const present = dirs.filter((d) => existsSync(path.join(cwd, d)));
  const r = await run(depcruise, ['--config', config, '--output-type', 'json', ...present], cwd);
  let violations: Violation[];
  try {
    violations = JSON.parse(r.stdout).summary.violations;
  } catch {
    // The json reporter exits 0 even with violations; a non-JSON answer is a crash.
    throw new Error(`depcruise gave no JSON (exit ${r.code}): ${r.stderr.slice(0, 2000)}`);
  }
  return { violations };
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'buildlite-depcheck-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Writes `files` (path → imports) as ES modules under `<dir>/dist/`. */
async function fixture(name: string, files: Record<string, string[]>): Promise<string> {
  const dir = path.join(tmp, name);
  for (const [file, imports] of Object.entries(files)) {
    const full = path.join(dir, 'dist', file);
    await mkdir(path.dirname(full), { recursive: true });
    const body = imports.map((spec, i) => `import * as m${i} from '${spec}';\nexport const u${i} = m${i};`).join('\n');
    await writeFile(full, `${body}\nexport const x = 1;\n`);
  }
  return dir;
}

const DIRS = ['dist/core', 'dist/builder', 'dist/registry-client', 'dist/cache', 'dist/worker', 'dist/api', 'dist/cli'];

describe('import rules (dependency-cruiser)', () => {
  it('passes an allowed layout', async () => {
    const dir = await fixture('ok', {
      'core/digest.js': [],
      'core/errors.js': ['./digest.js'],
      'cache/index.js': ['../core/errors.js'],
      'registry-client/index.js': ['../core/digest.js'],
      'builder/graph/index.js': ['../../core/digest.js'],
      'builder/solver/index.js': ['../graph/index.js', '../../cache/index.js'],
      'builder/index.js': ['./solver/index.js', '../registry-client/index.js'],
      'worker/jobs.js': ['../core/digest.js'],
      'worker/index.js': ['./jobs.js', '../builder/index.js'],
      'api/index.js': ['../worker/jobs.js'],
      'cli/main.js': ['../builder/index.js', '../api/index.js'],
    });
    const { violations } = await cruise(dir, DIRS);
    expect(violations).toEqual([]);
    // The reporter scripts/depcheck.sh uses: its exit code is what fails `npm test`.
    expect((await run(depcruise, ['--config', config, '--output-type', 'err', 'dist'], dir)).code).toBe(0);
  });

  it.each([
    ['core importing cache', { 'core/a.js': ['../cache/index.js'], 'cache/index.js': [] }, 'layer:core', 'dist/core/a.js'],
    ['registry-client importing cache', { 'registry-client/index.js': ['../cache/index.js'], 'cache/index.js': [] }, 'layer:registry-client', 'dist/registry-client/index.js'],
    ['graph importing executor', { 'builder/graph/g.js': ['../executor/index.js'], 'builder/executor/index.js': [] }, 'layer:builder/graph', 'dist/builder/graph/g.js'],
    ['executor importing snapshot', { 'builder/executor/r.js': ['../snapshot/index.js'], 'builder/snapshot/index.js': [] }, 'layer:builder/executor', 'dist/builder/executor/r.js'],
    ['worker importing the solver', { 'worker/w.js': ['../builder/solver/index.js'], 'builder/solver/index.js': [] }, 'layer:worker', 'dist/worker/w.js'],
    ['api importing the builder', { 'api/s.js': ['../builder/index.js'], 'builder/index.js': [] }, 'layer:api', 'dist/api/s.js'],
    ['api importing worker internals', { 'api/s.js': ['../worker/worker.js'], 'worker/worker.js': [] }, 'layer:api', 'dist/api/s.js'],
    ['worker reaching into cache internals', { 'worker/w.js': ['../cache/local-store.js'], 'cache/local-store.js': [] }, 'through-index:top-level', 'dist/worker/w.js'],
    ['solver reaching into graph internals', { 'builder/solver/s.js': ['../graph/walk.js'], 'builder/graph/walk.js': [] }, 'through-index:builder-subfolders', 'dist/builder/solver/s.js'],
    ['cache using registry-client outside the remote cache', { 'cache/gc.js': ['../registry-client/index.js'], 'registry-client/index.js': [] }, 'cache-registry-client-remote-only', 'dist/cache/gc.js'],
    ['a cycle', { 'cache/a.js': ['./b.js'], 'cache/b.js': ['./a.js'] }, 'no-circular', 'dist/cache/a.js'],
    ['an import that does not resolve', { 'core/a.js': ['./nope.js'] }, 'not-to-unresolvable', 'dist/core/a.js'],
  ])('fails on %s', async (name, files, rule, from) => {
    const dir = await fixture(name.replace(/\W+/g, '-'), files);
    const { violations } = await cruise(dir, DIRS);
    expect(violations.map((v) => `${v.rule.name} ${v.from}`)).toContain(`${rule} ${from}`);
  });

  it('exits non-zero with the reporter scripts/depcheck.sh uses', async () => {
    const dir = await fixture('err-exit', { 'core/a.js': ['../cache/index.js'], 'cache/index.js': [] });
    const r = await run(depcruise, ['--config', config, '--output-type', 'err', 'dist'], dir);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toContain('layer:core: dist/core/a.js → dist/cache/index.js');
  });

  it('finds no violation in the real tree', async () => {
    // A private compile: ./dist may be in use by other tests, and must not be stale here.
    const dir = path.join(tmp, 'real');
    await mkdir(dir, { recursive: true });
    await symlink(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'));
    // dist/ sits beside package.json in a real tree; a module may import it.
    await copyFile(path.join(repo, 'package.json'), path.join(dir, 'package.json'));
    // Type errors do not stop emit; the type-check is a separate step of `npm test`.
    await run(tsc, ['-p', path.join(repo, 'tsconfig.json'), '--outDir', path.join(dir, 'dist')], repo);
    const { violations } = await cruise(dir, DIRS);
    const report = violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`);
    expect(report).toEqual([]);
  }, 120_000);
});
