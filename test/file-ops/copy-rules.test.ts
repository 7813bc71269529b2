import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, linkSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CopyAction, FileAction } from '../../builder/graph/index.js';
import { InvalidFileModeError } from '../../core/file-mode.js';
import { FileOpError, SourceNotFoundError, applyFileActions } from '../../builder/solver/file-ops/index.js';
import { fileCtx, snapshot, tempDir, type FsEntry } from './helpers.js';

let base: { dir: string; cleanup: () => Promise<void> };
let ctxDir: string;
let stageDir: string;
let rootDir: string;
let outside: string;
let n = 0;

function write(root: string, rel: string, data: string, mode = 0o644): void {
  const p = path.join(root, rel);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, data);
  chmodSync(p, mode);
}

beforeAll(async () => {
  base = await tempDir('copy-rules');
  ctxDir = path.join(base.dir, 'context');
  write(ctxDir, 'a.txt', 'a\n');
  write(ctxDir, 'b.txt', 'b\n');
  write(ctxDir, 'c.log', 'c\n');
  write(ctxDir, 'run.sh', '#!/bin/sh\necho hi\n', 0o755);
  write(ctxDir, 'tree/a.txt', 'ta\n');
  write(ctxDir, 'tree/sub/b.txt', 'tb\n');
  write(ctxDir, 'tree/sub/readme.md', 'md\n');
  mkdirSync(path.join(ctxDir, 'tree/empty'));
  write(ctxDir, 'src/x/x.go', 'x\n');
  write(ctxDir, 'src/y/y.go', 'y\n');
  write(ctxDir, 'src/y/y.md', 'ymd\n');
  write(ctxDir, 'odd/with space.txt', 'space\n');
  write(ctxDir, 'odd/-dash.txt', 'dash\n');
  write(ctxDir, 'odd/ünïcødé.txt', 'uni\n');
  write(ctxDir, 'odd/.hidden', 'hidden\n');
  mkdirSync(path.join(ctxDir, 'odd/empty dir'));
  write(ctxDir, 'hl/one', 'same inode\n');
  linkSync(path.join(ctxDir, 'hl/one'), path.join(ctxDir, 'hl/two'));
  write(ctxDir, 'links/target.txt', 'target\n');
  symlinkSync('target.txt', path.join(ctxDir, 'links/rel'));
  symlinkSync('/etc/passwd', path.join(ctxDir, 'links/abs'));
  symlinkSync('../../../../../../etc', path.join(ctxDir, 'links/up'));
  symlinkSync('links/target.txt', path.join(ctxDir, 'top-link'));
  symlinkSync('/etc', path.join(ctxDir, 'escape-link'));
  symlinkSync('tree', path.join(ctxDir, 'dir-link'));
  write(ctxDir, 'owned.txt', 'owned\n');
  chownSync(path.join(ctxDir, 'owned.txt'), 1234, 4321);
  write(ctxDir, 'ign/keep.txt', 'k\n');
  write(ctxDir, 'ign/drop.txt', 'd\n');
  write(ctxDir, 'ign/deep/x.o', 'o\n');
  write(ctxDir, 'secret.key', 'key\n');

  stageDir = path.join(base.dir, 'stage');
  write(stageDir, 'p/setuid', 's\n', 0o4755);
  write(stageDir, 'p/setgid', 'g\n', 0o2755);
  mkdirSync(path.join(stageDir, 'p/sticky'));
  chmodSync(path.join(stageDir, 'p/sticky'), 0o1777);
  write(stageDir, 'p/none', 'x\n', 0o000);
  mkdirSync(path.join(stageDir, 'p/private'));
  chmodSync(path.join(stageDir, 'p/private'), 0o700);
  chownSync(path.join(stageDir, 'p/private'), 1000, 1000);
  write(stageDir, 'p/owned', 'o\n');
  chownSync(path.join(stageDir, 'p/owned'), 1000, 50);
  execFileSync('mkfifo', [path.join(stageDir, 'p/fifo')]);
  execFileSync('mknod', [path.join(stageDir, 'p/null'), 'c', '1', '3']);
  utimesSync(path.join(stageDir, 'p/setuid'), new Date('2020-01-02T03:04:05Z'), new Date('2020-01-02T03:04:05Z'));
});

afterAll(async () => {
  await base?.cleanup();
});

beforeEach(() => {
  n++;
  rootDir = path.join(base.dir, `root-${n}`);
  outside = path.join(base.dir, `outside-${n}`);
  mkdirSync(rootDir);
  mkdirSync(outside);
});

afterEach(() => {
  // Nothing a copy does may land next to the root.
  expect(readdirSync(outside)).toEqual([]);
});

function copy(paths: string[], dest: string, extra: Partial<CopyAction> = {}): CopyAction {
  return { op: 'copy', src: 0, paths, dest, excludes: [], add: false, ...extra };
}

async function run(actions: FileAction[], opts: { ignore?: string[]; sourceDateEpoch?: number } = {}): Promise<FsEntry[]> {
  await applyFileActions(rootDir, actions, fileCtx([ctxDir, stageDir], opts));
  return snapshot(rootDir);
}

const paths = (entries: FsEntry[]) => entries.map((e) => `${e.type === 'dir' ? 'D' : e.type === 'symlink' ? 'L' : 'F'} ${e.path}`);

describe('COPY path rules', () => {
  it.each<[string, CopyAction[], string[]]>([
    ['file to a new name', [copy(['a.txt'], '/b.txt')], ['F /b.txt']],
    ['file into dir/', [copy(['a.txt'], '/d/')], ['D /d', 'F /d/a.txt']],
    ['file into nested new dirs', [copy(['a.txt'], '/x/y/z/')], ['D /x', 'D /x/y', 'D /x/y/z', 'F /x/y/z/a.txt']],
    ['dir copies its contents', [copy(['tree'], '/t')], ['D /t', 'F /t/a.txt', 'D /t/empty', 'D /t/sub', 'F /t/sub/b.txt', 'F /t/sub/readme.md']],
    ['dir with trailing slash, same', [copy(['tree/'], '/t/')], ['D /t', 'F /t/a.txt', 'D /t/empty', 'D /t/sub', 'F /t/sub/b.txt', 'F /t/sub/readme.md']],
    ['wildcard: top-level only', [copy(['*.txt'], '/w/')], ['D /w', 'F /w/a.txt', 'F /w/b.txt', 'F /w/owned.txt']],
    ['wildcard: ? and classes', [copy(['[ab].txt', 'c.*'], '/m/')], ['D /m', 'F /m/a.txt', 'F /m/b.txt', 'F /m/c.log']],
    ['wildcard: per segment', [copy(['src/*/*.go'], '/go/')], ['D /go', 'F /go/x.go', 'F /go/y.go']],
    ['wildcard matching dirs copies their contents', [copy(['sr?'], '/s/')], ['D /s', 'D /s/x', 'F /s/x/x.go', 'D /s/y', 'F /s/y/y.go', 'F /s/y/y.md']],
    ['one wildcard match may name a file', [copy(['a.t?t'], '/single')], ['F /single']],
    ['several sources into dir/', [copy(['a.txt', 'tree/sub/b.txt'], '/multi/')], ['D /multi', 'F /multi/a.txt', 'F /multi/b.txt']],
    ['dot copies the whole context root contents', [copy(['tree/sub/.'], '/dot')], ['D /dot', 'F /dot/b.txt', 'F /dot/readme.md']],
    ['.. is clamped to the source root', [copy(['../../../a.txt'], '/clamped')], ['F /clamped']],
    ['symlinks inside a dir are copied as links', [copy(['links'], '/l')], ['D /l', 'L /l/abs', 'L /l/rel', 'F /l/target.txt', 'L /l/up']],
    ['a top-level symlink source is followed in the root, keeping its name', [copy(['top-link'], '/tl/')], ['D /tl', 'F /tl/top-link']],
    ['a top-level link to a dir copies the dir contents', [copy(['dir-link'], '/dl')], ['D /dl', 'F /dl/a.txt', 'D /dl/empty', 'D /dl/sub', 'F /dl/sub/b.txt', 'F /dl/sub/readme.md']],
    ['--exclude applies under the source', [copy(['tree'], '/e', { excludes: ['**/*.md', 'empty'] })], ['D /e', 'F /e/a.txt', 'D /e/sub', 'F /e/sub/b.txt']],
    ['--exclude applies to wildcard matches', [copy(['*.txt'], '/we/', { excludes: ['b.*'] })], ['D /we', 'F /we/a.txt', 'F /we/owned.txt']],
    ['a dir into the root itself', [copy(['tree/sub'], '/')], ['F /b.txt', 'F /readme.md']],
    ['a wildcard into the root', [copy(['[ab].txt'], '/')], ['F /a.txt', 'F /b.txt']],
    ['odd names and empty dirs', [copy(['odd'], '/o/')], ['D /o', 'F /o/-dash.txt', 'F /o/.hidden', 'D /o/empty dir', 'F /o/with space.txt', 'F /o/ünïcødé.txt']],
  ])('%s', async (_name, actions, want) => {
    expect(paths(await run(actions))).toEqual(want);
  });

  it('copies file content and keeps the link targets as written', async () => {
    await run([copy(['links'], '/l'), copy(['a.txt'], '/x/a.txt')]);
    expect(readFileSync(path.join(rootDir, 'x/a.txt'), 'utf8')).toBe('a\n');
    expect(readlinkSync(path.join(rootDir, 'l/up'))).toBe('../../../../../../etc');
    expect(readlinkSync(path.join(rootDir, 'l/abs'))).toBe('/etc/passwd');
    expect(readFileSync(path.join(rootDir, 'l/target.txt'), 'utf8')).toBe('target\n');
  });

  it.each<[string, CopyAction, new (...a: never[]) => Error, RegExp]>([
    ['missing source', copy(['nope.txt'], '/x'), SourceNotFoundError, /nope\.txt/],
    ['wildcard with no match', copy(['*.nothing'], '/x/'), FileOpError, /\*\.nothing/],
    ['several sources without a dir dest', copy(['a.txt', 'b.txt'], '/notdir'), FileOpError, /must be a directory and end with a \//],
    ['a wildcard with several matches and no dir dest', copy(['*.txt'], '/notdir'), FileOpError, /must be a directory/],
    ['a top-level link out of the source root', copy(['escape-link/passwd'], '/x'), SourceNotFoundError, /escape-link/],
    ['bad --chmod', copy(['a.txt'], '/x', { chmod: 'u+q' }), InvalidFileModeError, /chmod "u\+q"/],
  ])('%s is an error', async (_name, action, cls, msg) => {
    const err = await run([action]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(cls);
    expect(String((err as Error).message)).toMatch(msg);
  });
});

describe('destinations stay inside the root', () => {
  it('follows a symlink inside the root', async () => {
    mkdirSync(path.join(rootDir, 'real'));
    symlinkSync('/real', path.join(rootDir, 'link'));
    await run([copy(['a.txt'], '/link/')]);
    expect(readFileSync(path.join(rootDir, 'real/a.txt'), 'utf8')).toBe('a\n');
    expect(lstatSync(path.join(rootDir, 'link')).isSymbolicLink()).toBe(true);
  });

  it.each([['/'], ['../../..'], ['../../../../../..'], ['/../../..']])('a dest link to %j cannot make a write land outside', async (target) => {
    symlinkSync(target, path.join(rootDir, 'evil'));
    await run([copy(['a.txt'], '/evil/a.txt'), copy(['tree'], '/evil/t'), copy(['b.txt'], '/evil')]);
    expect(readFileSync(path.join(rootDir, 'a.txt'), 'utf8')).toBe('a\n');
    expect(readFileSync(path.join(rootDir, 't/sub/b.txt'), 'utf8')).toBe('tb\n');
    // /evil resolves to the root dir, an existing dir: b.txt lands inside it.
    expect(readFileSync(path.join(rootDir, 'b.txt'), 'utf8')).toBe('b\n');
  });

  it('a link inside a merged dir is resolved in the root, never written through to the host', async () => {
    mkdirSync(path.join(rootDir, 'm'));
    // The same name exists inside the root: that is where the link leads, as seen from the image.
    mkdirSync(path.join(rootDir, `outside-${n}`));
    symlinkSync(`../../outside-${n}`, path.join(rootDir, 'm/sub'));
    symlinkSync('/missing-dir', path.join(rootDir, 'm/empty'));
    symlinkSync(`/../../outside-${n}/file`, path.join(rootDir, 'm/a.txt'));
    await run([copy(['tree'], '/m/')]);
    // The file link was replaced, not followed.
    expect(lstatSync(path.join(rootDir, 'm/a.txt')).isFile()).toBe(true);
    // A dir link to a dir in the root is merged into; one that leads nowhere is replaced by a dir.
    const all = snapshot(rootDir).map((e) => e.path);
    expect(all).toContain(`/outside-${n}/b.txt`);
    expect(lstatSync(path.join(rootDir, 'm/sub')).isSymbolicLink()).toBe(true);
    expect(lstatSync(path.join(rootDir, 'm/empty')).isDirectory()).toBe(true);
  });

  it('a dest that is a link to a file outside is clamped into the root', async () => {
    symlinkSync(`../outside-${n}/victim`, path.join(rootDir, 'f'));
    await run([copy(['a.txt'], '/f')]);
    expect(readFileSync(path.join(rootDir, `outside-${n}/victim`), 'utf8')).toBe('a\n');
  });
});

describe('COPY --parents', () => {
  const parents = (paths: string[], dest: string, extra: Partial<CopyAction> = {}) => copy(paths, dest, { parents: true, ...extra });
  it.each<[string, CopyAction[], string[]]>([
    ['files keep their directories', [parents(['tree/a.txt', 'src/y/y.go'], '/p/')], ['D /p', 'D /p/src', 'D /p/src/y', 'F /p/src/y/y.go', 'D /p/tree', 'F /p/tree/a.txt']],
    ['a directory keeps its path and its contents', [parents(['tree/sub'], '/p')], ['D /p', 'D /p/tree', 'D /p/tree/sub', 'F /p/tree/sub/b.txt', 'F /p/tree/sub/readme.md']],
    ['a wildcard keeps the matched paths', [parents(['src/*/*.go'], '/p/')], ['D /p', 'D /p/src', 'D /p/src/x', 'F /p/src/x/x.go', 'D /p/src/y', 'F /p/src/y/y.go']],
    ['** spans any number of directories, none included', [parents(['**/*.md'], '/p/')], ['D /p', 'D /p/src', 'D /p/src/y', 'F /p/src/y/y.md', 'D /p/tree', 'D /p/tree/sub', 'F /p/tree/sub/readme.md']],
    ['a /./ pivot keeps only what follows it', [parents(['tree/./sub/b.txt'], '/p/')], ['D /p', 'D /p/sub', 'F /p/sub/b.txt']],
    ['a pivot with ** after it', [parents(['src/./**/*.go'], '/p/')], ['D /p', 'D /p/x', 'F /p/x/x.go', 'D /p/y', 'F /p/y/y.go']],
    ['a wildcard before the pivot merges the matches', [parents(['src/*/./*.go'], '/p/')], ['D /p', 'F /p/x.go', 'F /p/y.go']],
    ['a leading ./ is not a pivot', [parents(['./tree/a.txt'], '/p/')], ['D /p', 'D /p/tree', 'F /p/tree/a.txt']],
    ['a wildcard that matches nothing copies nothing', [parents(['src/*/*.rs'], '/p/')], ['D /p']],
    ['--exclude still applies', [parents(['src/**'], '/p/', { excludes: ['**/*.md'] })], ['D /p', 'D /p/src', 'D /p/src/x', 'F /p/src/x/x.go', 'D /p/src/y', 'F /p/src/y/y.go']],
    ['one source without a trailing slash still goes into dest', [parents(['a.txt'], '/p')], ['D /p', 'F /p/a.txt']],
  ])('%s', async (_name, actions, want) => {
    expect(paths(await run(actions))).toEqual(want);
  });

  it('directories on the way keep the source directories\' modes', async () => {
    chmodSync(path.join(ctxDir, 'src/y'), 0o750);
    try {
      const fs = await run([parents(['src/y/y.go'], '/p/')]);
      expect(fs.find((e) => e.path === '/p/src/y')).toMatchObject({ mode: '0750', uid: 0, gid: 0 });
    } finally {
      chmodSync(path.join(ctxDir, 'src/y'), 0o755);
    }
  });

  it('.dockerignore hides what it ignores', async () => {
    expect(paths(await run([parents(['ign/**'], '/p/')], { ignore: ['ign/drop.txt'] }))).toEqual(['D /p', 'D /p/ign', 'D /p/ign/deep', 'F /p/ign/deep/x.o', 'F /p/ign/keep.txt']);
  });

  it('a plain path that does not exist is not found, naming it', async () => {
    const err = await run([parents(['tree/./nope.txt'], '/p/')]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SourceNotFoundError);
    expect(String(err)).toContain('tree/nope.txt');
  });

  it('a base that is a file is refused', async () => {
    const err = await run([parents(['a.txt/./*'], '/p/')]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FileOpError);
    expect(String(err)).toMatch(/not a directory/);
  });
});

describe('owners, modes, times', () => {
  it('context files become 0:0 and keep their modes', async () => {
    const fs = await run([copy(['owned.txt', 'run.sh'], '/o/')]);
    expect(fs.find((e) => e.path === '/o/owned.txt')).toMatchObject({ uid: 0, gid: 0, mode: '0644' });
    expect(fs.find((e) => e.path === '/o/run.sh')).toMatchObject({ uid: 0, gid: 0, mode: '0755' });
  });

  it('--chown applies to files, dirs and created parents; --chmod to files and dirs', async () => {
    const fs = await run([
      copy(['tree'], '/p/q/t', { chown: { user: 'nobody', group: 'nobody' } }),
      copy(['a.txt'], '/c/by-name.ini', { chown: { user: 'app', group: 'staff' } }),
      copy(['a.txt'], '/c/uid-only.ini', { chown: { user: '2000' } }),
      copy(['tree/sub'], '/chmod', { chmod: '0640' }),
      copy(['run.sh'], '/bin/run', { chown: { user: 'app' }, chmod: '755' }),
      copy(['tree/sub', 'run.sh'], '/sym/', { chmod: 'u=rwX,go=rX' }),
      copy(['a.txt'], '/sym/x.txt', { chmod: '+x,go-w' }),
    ]);
    const by = (p: string) => fs.find((e) => e.path === p);
    expect(by('/p')).toMatchObject({ uid: 65534, gid: 65534, mode: '0755' });
    expect(by('/p/q/t')).toMatchObject({ uid: 65534, gid: 65534, type: 'dir' });
    expect(by('/p/q/t/sub/b.txt')).toMatchObject({ uid: 65534, gid: 65534, mode: '0644' });
    expect(by('/c/by-name.ini')).toMatchObject({ uid: 1000, gid: 50 });
    expect(by('/c')).toMatchObject({ uid: 1000, gid: 50 });
    expect(by('/c/uid-only.ini')).toMatchObject({ uid: 2000, gid: 2000 });
    expect(by('/chmod')).toMatchObject({ mode: '0640' });
    expect(by('/chmod/b.txt')).toMatchObject({ mode: '0640' });
    expect(by('/bin/run')).toMatchObject({ uid: 1000, gid: 1000, mode: '0755' });
    // Symbolic modes change each entry's own mode: X only for directories and executables.
    expect(by('/sym/b.txt')).toMatchObject({ mode: '0644' });
    expect(by('/sym/run.sh')).toMatchObject({ mode: '0755' });
    expect(by('/sym/x.txt')).toMatchObject({ mode: '0755' });
  });

  it('files from a stage keep owners and special bits; FIFOs and devices are recreated', async () => {
    const fs = await run([{ op: 'copy', src: 1, paths: ['/p'], dest: '/perms', excludes: [], add: false }]);
    const by = (p: string) => fs.find((e) => e.path === p);
    expect(by('/perms/setuid')).toMatchObject({ mode: '4755', uid: 0 });
    expect(by('/perms/setgid')).toMatchObject({ mode: '2755' });
    expect(by('/perms/sticky')).toMatchObject({ mode: '1777', type: 'dir' });
    expect(by('/perms/none')).toMatchObject({ mode: '0000', size: 2 });
    expect(by('/perms/private')).toMatchObject({ mode: '0700', uid: 1000, gid: 1000 });
    expect(by('/perms/owned')).toMatchObject({ uid: 1000, gid: 50 });
    expect(by('/perms/fifo')).toMatchObject({ type: 'fifo' });
    expect(by('/perms/null')).toMatchObject({ type: 'char' });
    expect(lstatSync(path.join(rootDir, 'perms/null')).rdev).toBe(lstatSync(path.join(stageDir, 'p/null')).rdev);
  });

  it.each<[string, string, string]>([
    ['p/setuid', '755', '4755'],
    ['p/setuid', '0700', '4700'],
    ['p/owned', '2755', '2755'],
    ['p/owned', '600', '0600'],
  ])('--chmod on %s with %s gives %s', async (src, chmod, want) => {
    const fs = await run([{ op: 'copy', src: 1, paths: [src], dest: '/f', excludes: [], add: false, chmod }]);
    expect(fs.find((e) => e.path === '/f')?.mode).toBe(want);
  });

  it('stops when the signal is aborted', async () => {
    const ac = new AbortController();
    ac.abort(new Error('cancelled by test'));
    await expect(applyFileActions(rootDir, [copy(['tree'], '/t')], fileCtx([ctxDir]), ac.signal)).rejects.toThrow(/cancelled by test/);
    expect(readdirSync(rootDir)).toEqual([]);
  });

  it('keeps mtimes, and clamps them to SOURCE_DATE_EPOCH', async () => {
    await run([{ op: 'copy', src: 1, paths: ['/p/setuid'], dest: '/kept', excludes: [], add: false }]);
    expect(lstatSync(path.join(rootDir, 'kept')).mtime.toISOString()).toBe('2020-01-02T03:04:05.000Z');
    const epoch = Date.parse('2019-06-01T00:00:00Z') / 1000;
    await run([{ op: 'copy', src: 1, paths: ['/p/setuid'], dest: '/clamped', excludes: [], add: false }], { sourceDateEpoch: epoch });
    expect(lstatSync(path.join(rootDir, 'clamped')).mtimeMs).toBe(epoch * 1000);
  });

  it('keeps hardlinks within one copy', async () => {
    const fs = await run([copy(['hl'], '/hl')]);
    expect(fs.find((e) => e.path === '/hl/one')?.link_group).toBe('/hl/one');
    expect(fs.find((e) => e.path === '/hl/two')?.link_group).toBe('/hl/one');
  });
});

describe('.dockerignore and replacement', () => {
  it('ignored files do not exist; negation re-includes under an ignored dir', async () => {
    const fs = await run([copy(['.'], '/ctx/')], { ignore: ['*.key', 'ign', '!ign/keep.txt', '**/*.o', 'odd', 'src', 'hl', 'links', '*link', 'tree'] });
    expect(paths(fs)).toEqual(['D /ctx', 'F /ctx/a.txt', 'F /ctx/b.txt', 'F /ctx/c.log', 'D /ctx/ign', 'F /ctx/ign/keep.txt', 'F /ctx/owned.txt', 'F /ctx/run.sh']);
  });

  it('a named source that is ignored is not found', async () => {
    await expect(run([copy(['secret.key'], '/k')], { ignore: ['*.key'] })).rejects.toBeInstanceOf(SourceNotFoundError);
  });

  it('a file replaces a dir and a dir replaces a file', async () => {
    mkdirSync(path.join(rootDir, 'thing/sub'), { recursive: true });
    writeFileSync(path.join(rootDir, 'thing/sub/inner'), 'x');
    mkdirSync(path.join(rootDir, 'd'));
    writeFileSync(path.join(rootDir, 'd/sub'), 'file in the way');
    mkdirSync(path.join(rootDir, 'd/a.txt/dir-in-the-way'), { recursive: true });
    writeFileSync(path.join(rootDir, 'was-file'), 'f');
    await run([copy(['tree'], '/d'), copy(['tree'], '/was-file')]);
    expect(lstatSync(path.join(rootDir, 'd/sub')).isDirectory()).toBe(true);
    expect(readFileSync(path.join(rootDir, 'd/sub/b.txt'), 'utf8')).toBe('tb\n');
    expect(readFileSync(path.join(rootDir, 'd/a.txt'), 'utf8')).toBe('ta\n');
    expect(lstatSync(path.join(rootDir, 'was-file')).isDirectory()).toBe(true);
    // A file onto an existing dir without a slash lands inside it, as Docker does.
    await run([copy(['a.txt'], '/thing')]);
    expect(readFileSync(path.join(rootDir, 'thing/a.txt'), 'utf8')).toBe('a\n');
  });

  it('a file replaces a file', async () => {
    writeFileSync(path.join(rootDir, 'thing'), 'now a file');
    await run([copy(['b.txt'], '/thing')]);
    expect(readFileSync(path.join(rootDir, 'thing'), 'utf8')).toBe('b\n');
  });
});

describe('mkdir and mkfile', () => {
  it('mkdir makes parents, keeps an existing dir, applies mode and owner', async () => {
    mkdirSync(path.join(rootDir, 'exists'));
    chmodSync(path.join(rootDir, 'exists'), 0o700);
    const fs = await run([
      { op: 'mkdir', path: '/w/x/y', mode: 0o750, chown: { user: 'app' } },
      { op: 'mkdir', path: '/exists', mode: 0o755 },
    ]);
    expect(fs.find((e) => e.path === '/w')).toMatchObject({ mode: '0755', uid: 1000 });
    expect(fs.find((e) => e.path === '/w/x/y')).toMatchObject({ mode: '0750', uid: 1000, gid: 1000 });
    expect(fs.find((e) => e.path === '/exists')).toMatchObject({ mode: '0700' });
  });

  it('mkfile writes heredoc content, replacing a link rather than following it', async () => {
    mkdirSync(path.join(rootDir, 'heredoc'));
    symlinkSync(`../../outside-${n}/x`, path.join(rootDir, 'heredoc/copied.conf'));
    const fs = await run([{ op: 'mkfile', path: '/heredoc/copied.conf', data: 'key=value\nother=thing\n', mode: 0o644 }]);
    expect(fs.find((e) => e.path === '/heredoc/copied.conf')).toMatchObject({
      type: 'file',
      mode: '0644',
      size: 22,
      sha256: '8244723637308ffe027837ebec0e9703d749d5ed05c25c7b91b5874f00547100',
    });
  });
});

describe('ADD', () => {
  let arch: string;
  beforeAll(() => {
    arch = path.join(base.dir, 'archives');
    const tree = path.join(base.dir, 'archive-tree');
    write(tree, 'pkg/run.sh', '#!/bin/sh\n', 0o755);
    write(tree, 'pkg/owned.txt', 'owned\n', 0o600);
    mkdirSync(arch);
    execFileSync('tar', ['-cf', path.join(arch, 'plain.bin'), '-C', tree, '--owner=1000', '--group=50', '--numeric-owner', 'pkg']);
    execFileSync('sh', ['-c', `gzip -c plain.bin > gz.data && bzip2 -c plain.bin > bz.data && xz -c plain.bin > xz.data && echo hello | gzip -c > notatar.gz && echo text > fake.tar`], { cwd: arch });
  });

  const add = (p: string, dest: string, extra: Partial<CopyAction> = {}): CopyAction => ({ op: 'copy', src: 2, paths: [p], dest, excludes: [], add: true, ...extra });
  const runAdd = async (actions: FileAction[]) => {
    await applyFileActions(rootDir, actions, fileCtx([ctxDir, stageDir, arch]));
    return snapshot(rootDir);
  };

  it.each([['plain.bin'], ['gz.data'], ['bz.data'], ['xz.data']])('unpacks the archive %s, told by content, owners and modes kept', async (name) => {
    const fs = await runAdd([add(name, '/x')]);
    expect(fs.find((e) => e.path === '/x/pkg/run.sh')).toMatchObject({ mode: '0755', uid: 1000, gid: 50 });
    expect(fs.find((e) => e.path === '/x/pkg/owned.txt')).toMatchObject({ mode: '0600', size: 6 });
  });

  it('--chown owns every extracted entry and the created destination; modes stay the archive\'s', async () => {
    // The archive's entries are 1000:50; --chown nobody:nobody makes them 65534:65534.
    const fs = await runAdd([add('gz.data', '/owned/x', { chown: { user: 'nobody', group: 'nobody' } })]);
    const by = (p: string) => fs.find((e) => e.path === p);
    for (const p of ['/owned', '/owned/x', '/owned/x/pkg', '/owned/x/pkg/run.sh', '/owned/x/pkg/owned.txt']) expect(by(p), p).toMatchObject({ uid: 65534, gid: 65534 });
    expect(by('/owned/x/pkg/run.sh')).toMatchObject({ mode: '0755' });
    expect(by('/owned/x/pkg/owned.txt')).toMatchObject({ mode: '0600' });
    const numeric = await runAdd([add('plain.bin', '/num', { chown: { user: '4242', group: '4343' } })]);
    expect(numeric.find((e) => e.path === '/num/pkg/run.sh')).toMatchObject({ uid: 4242, gid: 4343 });
  });

  it.each([['notatar.gz'], ['fake.tar']])('copies the non-archive %s as is', async (name) => {
    const fs = await runAdd([add(name, '/y/')]);
    expect(fs.find((e) => e.path === `/y/${name}`)).toMatchObject({ type: 'file', size: readFileSync(path.join(arch, name)).length });
  });

  it('COPY and literal (http, heredoc) sources never unpack', async () => {
    const fs = await runAdd([add('gz.data', '/c/', { add: false }), add('gz.data', '/lit/', { literal: true })]);
    expect(paths(fs)).toEqual(['D /c', 'F /c/gz.data', 'D /lit', 'F /lit/gz.data']);
  });

  it('ADD --unpack=true unpacks a fetched (literal) archive', async () => {
    const fs = await runAdd([add('gz.data', '/fetched', { literal: true, unpack: true })]);
    expect(fs.find((e) => e.path === '/fetched/pkg/run.sh')).toMatchObject({ mode: '0755' });
  });

  it('literal paths are not wildcards', async () => {
    writeFileSync(path.join(arch, 'star*'), 'literal star');
    await expect(runAdd([add('*.data', '/l/', { literal: true })])).rejects.toBeInstanceOf(SourceNotFoundError);
    const fs = await runAdd([add('star*', '/l/', { literal: true })]);
    expect(fs.find((e) => e.path === '/l/star*')).toMatchObject({ size: 12 });
  });
});
