import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseIgnoreFile } from '../../core/ignore.js';
import type { CopyAction, FileAction } from '../../builder/graph/index.js';
import { applyFileActions } from '../../builder/solver/file-ops/index.js';
import { CONFORMANCE_DIR } from '../helpers/conformance.js';
import { fileCtx, snapshot, tempDir, under, type FsEntry } from './helpers.js';

/**
 * Applies, by hand, the file actions that the COPY/ADD lines of some
 * conformance cases mean, and compares the result with the case's expected
 * flattened filesystem (only the paths those lines write). The suite lives
 * beside the project, or where BUILDLITE_CONFORMANCE_DIR says (test/helpers/conformance.ts).
 */
const CONFORMANCE = CONFORMANCE_DIR;
const present = existsSync(path.join(CONFORMANCE, 'cases')) && existsSync(path.join(CONFORMANCE, 'lib/stage.py'));

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await tempDir('conformance-fileops');
});
afterAll(async () => {
  await tmp?.cleanup();
});

const copy = (paths: string[], dest: string, extra: Partial<CopyAction> = {}): CopyAction => ({
  op: 'copy',
  src: 0,
  paths,
  dest,
  excludes: [],
  add: false,
  ...extra,
});
const mkdir = (p: string): FileAction => ({ op: 'mkdir', path: p, mode: 0o755 });

/** A stage's rootfs built the way the case's RUN lines build it. */
function stageFor(name: string, root: string): void {
  const w = (rel: string, data: string, mode = 0o644) => {
    mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    writeFileSync(path.join(root, rel), data);
    chmodSync(path.join(root, rel), mode);
  };
  if (name === 'multistage-copy-from-name-index') {
    w('out/artifact.txt', 'built in stage 0\n');
    w('out/lib/libdemo.so', 'lib\n');
    w('packed.txt', 'packed in stage 1\n');
  } else if (name === 'special-permissions') {
    w('p/setuid', 's\n', 0o4755);
    w('p/setgid', 'g\n', 0o2755);
    mkdirSync(path.join(root, 'p/sticky'));
    chmodSync(path.join(root, 'p/sticky'), 0o1777);
    w('p/none', 'x\n', 0o000);
    mkdirSync(path.join(root, 'p/private'));
    chmodSync(path.join(root, 'p/private'), 0o700);
    chownSync(path.join(root, 'p/private'), 1000, 1000);
  }
}

interface Case {
  readonly name: string;
  readonly actions: FileAction[];
  readonly prefixes: string[];
  readonly ignore?: boolean;
}

const CASES: Case[] = [
  {
    name: 'copy-dir-and-slash-rules',
    actions: [
      mkdir('/existing-dir'),
      copy(['tree'], '/contents-only'),
      copy(['tree/'], '/contents-slash/'),
      copy(['single.txt'], '/existing-dir'),
      copy(['single.txt'], '/new-name'),
      copy(['single.txt'], '/new-dir/'),
      copy(['single.txt', 'tree/sub/b.txt'], '/multi/'),
      copy(['tree/sub'], '/existing-dir/'),
    ],
    prefixes: ['/contents-only', '/contents-slash', '/existing-dir', '/new-name', '/new-dir', '/multi'],
  },
  {
    name: 'copy-wildcards',
    actions: [copy(['*.txt'], '/txt/'), copy(['?.cfg'], '/cfg-one-char/'), copy(['[ab].txt', 'c.*'], '/mixed/'), copy(['src/*/*.go'], '/gofiles/')],
    prefixes: ['/txt', '/cfg-one-char', '/mixed', '/gofiles'],
  },
  { name: 'dockerignore-negation', actions: [copy(['.'], '/ctx/')], prefixes: ['/ctx'], ignore: true },
  {
    name: 'copy-chown-chmod',
    actions: [
      mkdir('/app'),
      mkdir('/app/etc'),
      mkdir('/app/bin'),
      copy(['conf.ini'], '/app/etc/by-name.ini', { chown: { user: 'app', group: 'staff' } }),
      copy(['conf.ini'], '/app/etc/by-id.ini', { chown: { user: '1000', group: '50' } }),
      copy(['conf.ini'], '/app/etc/uid-only.ini', { chown: { user: '2000' } }),
      copy(['conf.ini'], '/app/etc/mode.ini', { chmod: '0640' }),
      copy(['run.sh'], '/app/bin/run', { chown: { user: 'app' }, chmod: '755' }),
      copy(['tree/'], '/app/tree/', { chown: { user: 'nobody', group: 'nobody' } }),
    ],
    prefixes: ['/app'],
  },
  {
    name: 'empty-dirs-odd-names',
    actions: [copy(['.'], '/ctx/'), copy(['with space.txt'], '/spaced dest/')],
    prefixes: ['/ctx', '/spaced dest'],
  },
  {
    name: 'from-scratch-copy',
    actions: [copy(['hello.txt'], '/'), copy(['conf/'], '/etc/app/')],
    prefixes: ['/hello.txt', '/etc/app'],
  },
  {
    name: 'add-local-tar',
    actions: [
      copy(['bundle.tar'], '/opt/', { add: true }),
      copy(['bundle.tgz'], '/srv/unpacked', { add: true }),
      copy(['bundle.tar'], '/copied/'),
      copy(['plain.txt'], '/added/plain.txt', { add: true }),
    ],
    prefixes: ['/opt', '/srv', '/copied', '/added'],
  },
  {
    name: 'multistage-copy-from-name-index',
    actions: [
      copy(['/out/artifact.txt'], '/app/', { src: 1 }),
      copy(['/out/lib'], '/app/lib', { src: 1 }),
      copy(['/packed.txt'], '/app/packed.txt', { src: 1 }),
      copy(['/packed.txt'], '/app/packed-by-name.txt', { src: 1 }),
    ],
    prefixes: ['/app'],
  },
  { name: 'special-permissions', actions: [copy(['/p'], '/perms', { src: 1 })], prefixes: ['/perms'] },
];

const strip = (e: FsEntry) => JSON.parse(JSON.stringify(e)) as Record<string, unknown>;

describe.skipIf(!present)('conformance cases, file ops only', () => {
  it.each(CASES)('$name', async (c) => {
    const work = path.join(tmp.dir, c.name);
    const staged = path.join(work, 'staged');
    mkdirSync(work);
    execFileSync('python3', [path.join(CONFORMANCE, 'lib/stage.py'), path.join(CONFORMANCE, 'cases', c.name), staged, '127.0.0.1:5002/x:y', '{dockerfile} {ref} {buildargs} {context}'], {
      stdio: 'pipe',
    });
    const contextDir = path.join(staged, 'context');
    mkdirSync(contextDir, { recursive: true });
    const stageRoot = path.join(work, 'stage');
    mkdirSync(stageRoot);
    stageFor(c.name, stageRoot);
    const root = path.join(work, 'root');
    mkdirSync(root);
    const ignore = c.ignore ? parseIgnoreFile(readFileSync(path.join(contextDir, '.dockerignore'), 'utf8')) : [];

    await applyFileActions(root, c.actions, fileCtx([contextDir, stageRoot], { ignore }));

    const expected = JSON.parse(readFileSync(path.join(CONFORMANCE, 'cases', c.name, 'expect.json'), 'utf8')) as { fs: FsEntry[] };
    const want = under(expected.fs, c.prefixes).map(strip);
    expect(want.length).toBeGreaterThan(0);
    expect(under(snapshot(root), c.prefixes).map(strip)).toEqual(want);
  });
});
