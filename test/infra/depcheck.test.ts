/**
 * The import-rule checker must fail on a forbidden import, whatever its form
 * (a value import, `import type`, an `import()` type, `await import()`, a
 * re-export), and pass on the real tree. It runs dependency-cruiser from
 * tools/depcheck with the project's own config against fixture trees laid out
 * like the repository, and scripts/depcheck.sh itself against the tree and a
 * scratch copy of it with a cycle planted.
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const script = path.join(repo, 'scripts/depcheck.sh');
const depcruise = path.join(repo, 'tools/depcheck/node_modules/.bin/depcruise');
const config = path.join(repo, '.dependency-cruiser.cjs');
const FOLDERS = ['core', 'builder', 'registry-client', 'cache', 'store', 'worker', 'api', 'cli'];

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

/** Runs depcruise on a fixture tree as scripts/depcheck.sh does, with the JSON reporter. */
async function cruise(cwd: string, dirs: string[]): Promise<Violation[]> {
  const r = await run(depcruise, ['--config', config, '--output-type', 'json', ...dirs], cwd);
  try {
    return JSON.parse(r.stdout).summary.violations;
  } catch {
    // The json reporter exits 0 even with violations; a non-JSON answer is a crash.
    throw new Error(`depcruise gave no JSON (exit ${r.code}): ${r.stderr.slice(0, 2000)}`);
  }
}

let tmp: string;
/** The script's run on the real tree: first, since it installs tools/depcheck when it is missing. */
let onTree: Awaited<ReturnType<typeof run>>;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'buildlite-depcheck-'));
  onTree = await run('bash', [script], repo);
}, 300_000);
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Writes `files` (path → TypeScript source) under a fresh `<tmp>/<name>/`. */
async function fixture(name: string, files: Record<string, string>): Promise<string> {
  const dir = path.join(tmp, name);
  for (const [file, body] of Object.entries(files)) {
    const full = path.join(dir, file);
    await mkdir(path.dirname(full), { recursive: true });
    await writeFile(full, `${body}\nexport const x = 1;\n`);
  }
  return dir;
}

// One line of each kind of import; each names the module as the sources do (NodeNext: `.js`).
const value = (spec: string) => `import { x as y } from '${spec}';\nexport const v = y;`;
const typeOnly = (spec: string) => `import type { T } from '${spec}';\nexport type U = T;`;
const inlineType = (spec: string) => `export type U = Promise<import('${spec}').T>;`;
const dynamic = (spec: string) => `export async function load() { return import('${spec}'); }`;
const reexport = (spec: string) => `export { x as z } from '${spec}';`;
const decl = 'export type T = number;';

describe('import rules (dependency-cruiser on the sources)', () => {
  it('passes an allowed layout', async () => {
    const dir = await fixture('ok', {
      'core/digest.ts': decl,
      'core/errors.ts': typeOnly('./digest.js'),
      'cache/index.ts': value('../core/errors.js'),
      'registry-client/index.ts': typeOnly('../core/digest.js'),
      'builder/graph/index.ts': value('../../core/digest.js'),
      'builder/solver/index.ts': `${value('../graph/index.js')}\n${typeOnly('../../cache/index.js')}`,
      'builder/index.ts': `${reexport('./solver/index.js')}\n${dynamic('../registry-client/index.js')}`,
      'store/index.ts': `${typeOnly('../core/digest.js')}\n${value('../registry-client/index.js')}`,
      'worker/jobs.ts': typeOnly('../core/digest.js'),
      'worker/redis-keys.ts': decl,
      'worker/index.ts': `${reexport('./jobs.js')}\n${inlineType('../builder/index.js')}\n${typeOnly('../store/index.js')}`,
      'api/index.ts': `${value('../worker/jobs.js')}\n${typeOnly('../worker/redis-keys.js')}\n${value('../store/index.js')}`,
      'cli/main.ts': `${dynamic('../builder/index.js')}\n${value('../api/index.js')}\n${value('../registry-client/index.js')}`,
    });
    expect(await cruise(dir, FOLDERS)).toEqual([]);
    // The script's own run (its reporter's exit code is what fails `npm test`).
    expect((await run('bash', [script, dir], repo)).code).toBe(0);
  });

  it.each([
    ['core importing cache', { 'core/a.ts': value('../cache/index.js'), 'cache/index.ts': decl }, 'layer:core', 'core/a.ts'],
    ['core importing a cache type', { 'core/a.ts': typeOnly('../cache/index.js'), 'cache/index.ts': decl }, 'layer:core', 'core/a.ts'],
    ['core loading cache with await import()', { 'core/a.ts': dynamic('../cache/index.js'), 'cache/index.ts': decl }, 'layer:core', 'core/a.ts'],
    ['registry-client naming a cache type in an import() type', { 'registry-client/index.ts': inlineType('../cache/index.js'), 'cache/index.ts': decl }, 'layer:registry-client', 'registry-client/index.ts'],
    ['graph importing an executor type', { 'builder/graph/g.ts': typeOnly('../executor/index.js'), 'builder/executor/index.ts': decl }, 'layer:builder/graph', 'builder/graph/g.ts'],
    ['executor importing snapshot', { 'builder/executor/r.ts': value('../snapshot/index.js'), 'builder/snapshot/index.ts': decl }, 'layer:builder/executor', 'builder/executor/r.ts'],
    ['worker importing the solver', { 'worker/w.ts': value('../builder/solver/index.js'), 'builder/solver/index.ts': decl }, 'layer:worker', 'worker/w.ts'],
    ['api importing the builder', { 'api/s.ts': dynamic('../builder/index.js'), 'builder/index.ts': decl }, 'layer:api', 'api/s.ts'],
    ['api importing worker internals', { 'api/s.ts': typeOnly('../worker/worker.js'), 'worker/worker.ts': decl }, 'layer:api', 'api/s.ts'],
    ['the store importing the queue contract', { 'store/r.ts': typeOnly('../worker/jobs.js'), 'worker/jobs.ts': decl }, 'layer:store', 'store/r.ts'],
    ['api reaching into store internals', { 'api/s.ts': value('../store/dir-store.js'), 'store/dir-store.ts': decl }, 'through-index:top-level', 'api/s.ts'],
    ['worker reaching into cache internals', { 'worker/w.ts': value('../cache/local-store.js'), 'cache/local-store.ts': decl }, 'through-index:top-level', 'worker/w.ts'],
    ['solver reaching into graph internals', { 'builder/solver/s.ts': typeOnly('../graph/walk.js'), 'builder/graph/walk.ts': decl }, 'through-index:builder-subfolders', 'builder/solver/s.ts'],
    ['cache using registry-client outside the remote cache', { 'cache/gc.ts': value('../registry-client/index.js'), 'registry-client/index.ts': decl }, 'cache-registry-client-remote-only', 'cache/gc.ts'],
    ['an index re-exporting another folder', { 'worker/index.ts': reexport('../cache/index.js'), 'cache/index.ts': decl }, 'no-foreign-reexport', 'worker/index.ts'],
    ['an index re-exporting core', { 'cli/table.ts': reexport('../core/bytes.js'), 'core/bytes.ts': decl }, 'no-foreign-reexport', 'cli/table.ts'],
    ['a cycle of values', { 'cache/a.ts': value('./b.js'), 'cache/b.ts': value('./a.js') }, 'no-circular', 'cache/a.ts'],
    ['a cycle of type-only imports', { 'cache/a.ts': typeOnly('./b.js'), 'cache/b.ts': typeOnly('./a.js') }, 'no-circular', 'cache/a.ts'],
    ['a cycle through an import() type', { 'builder/solver/types.ts': inlineType('./materialize.js'), 'builder/solver/materialize.ts': typeOnly('./types.js') }, 'no-circular', 'builder/solver/types.ts'],
    ['a cycle through await import()', { 'cli/build.ts': dynamic('./local.js'), 'cli/local.ts': typeOnly('./build.js') }, 'no-circular', 'cli/build.ts'],
    ['an import that does not resolve', { 'core/a.ts': value('./nope.js') }, 'not-to-unresolvable', 'core/a.ts'],
  ])('fails on %s', async (name, files, rule, from) => {
    const dir = await fixture(name.replace(/\W+/g, '-'), files);
    const violations = await cruise(dir, FOLDERS.filter((f) => Object.keys(files).some((k) => k.startsWith(`${f}/`))));
    // A cycle is reported once, from either of its modules.
    const froms = rule === 'no-circular' ? Object.keys(files) : [from];
    const found = violations.map((v) => `${v.rule.name} ${v.from}`);
    expect(found.some((f) => froms.some((m) => f === `${rule} ${m}`)), found.join('; ')).toBe(true);
  });

  it('passes on the tree, and fails once two of its files import each other\'s types', async () => {
    expect(onTree.stdout).toContain('no dependency violations found');
    expect(onTree.code).toBe(0);

    // A scratch copy of the sources (npm imports resolve through a link to node_modules).
    const copy = path.join(tmp, 'tree');
    for (const f of FOLDERS) await cp(path.join(repo, f), path.join(copy, f), { recursive: true });
    await symlink(path.join(repo, 'node_modules'), path.join(copy, 'node_modules'));
    await cp(path.join(repo, 'package.json'), path.join(copy, 'package.json'));
    const copyClean = await run('bash', [script, copy], repo);
    expect(copyClean.code).toBe(0);

    await writeFile(path.join(copy, 'builder/solver/planted-a.ts'), `import type { B } from './planted-b.js';\nexport type A = { b?: B };\n`);
    await writeFile(path.join(copy, 'builder/solver/planted-b.ts'), `import type { A } from './planted-a.js';\nexport type B = { a?: A };\n`);
    const planted = await run('bash', [script, copy], repo);
    expect(planted.code).not.toBe(0);
    expect(planted.stdout).toMatch(/no-circular: builder\/solver\/planted-[ab]\.ts/);
  }, 120_000);
});
