import { chmod, copyFile, mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUSYBOX_PATH } from '../helpers/busybox-rootfs.js';
import { runCli } from '../helpers/cli.js';

/** The bin's V8 code cache (cli/boot.ts): per user and command, private, and never a reason to fail. */
describe('compile cache of the buildlite bin', () => {
  let tmp: string;
  // A command that runs offline and exits 0: `graph` of a one-stage Dockerfile.
  let GRAPH: string[];
  let BAD_GRAPH: string[];
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-compile-cache-'));
    for (const [name, text] of [['ok', 'FROM scratch\nCOPY a /a\n'], ['bad', 'FROM scratch\nBOGUS x\n']] as const) {
      await mkdir(path.join(tmp, name));
      await writeFile(path.join(tmp, name, 'Dockerfile'), text);
    }
    GRAPH = ['graph', '--format', 'json', path.join(tmp, 'ok')];
    BAD_GRAPH = ['graph', path.join(tmp, 'bad')];
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  const cacheDir = (home: string) => path.join(home, 'buildlite', 'compile-cache');

  it('is written per command, private to the user, and reused', async () => {
    const home = path.join(tmp, 'a');
    const first = await runCli(GRAPH, { env: { XDG_CACHE_HOME: home } });
    expect(first.code).toBe(0);
    const files = await readdir(cacheDir(home));
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(new RegExp(`^[0-9a-f]{16}-${process.version.replace(/\./g, '\\.')}-${process.arch}-graph\\.bin$`));
    expect((await stat(cacheDir(home))).mode & 0o777).toBe(0o700);
    const file = path.join(cacheDir(home), files[0]!);
    const before = await stat(file);
    expect(before.mode & 0o777).toBe(0o600);
    expect(before.size).toBeGreaterThan(0);

    // A second run reads it (V8 accepts it), so it is not rewritten; the output is the same.
    const second = await runCli(GRAPH, { env: { XDG_CACHE_HOME: home } });
    expect(second).toEqual(first);
    expect((await stat(file)).mtimeMs).toBe(before.mtimeMs);

    // Another command gets its own cache.
    expect((await runCli(['du', '--root', path.join(tmp, 'du-root')], { env: { XDG_CACHE_HOME: home } })).code).toBe(0);
    expect((await readdir(cacheDir(home))).sort()).toEqual([files[0], files[0]!.replace('-graph.bin', '-du.bin')].sort());
  });

  it("a local build keeps its Dockerfile's parse in the state root, under the bundle's id, and reads it back", async () => {
    const root = path.join(tmp, 'p-root');
    const ctx = path.join(tmp, 'p-ctx');
    await mkdir(ctx);
    await writeFile(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY a /a\n');
    await writeFile(path.join(ctx, 'a'), 'a');
    const build = () => runCli(['build', '--root', root, '--progress', 'plain', ctx], { env: { XDG_CACHE_HOME: path.join(tmp, 'p-home') } });
    const parses = async () => (await readdir(path.join(root, 'parse-cache'))).filter((n) => /^[0-9a-f]{64}$/.test(n));

    const first = await build();
    expect(first.code).toBe(0);
    const kept = await parses();
    expect(kept).toHaveLength(1);
    const file = path.join(root, 'parse-cache', kept[0]!);
    const before = await stat(file);
    expect(before.mode & 0o777).toBe(0o600);

    // The same text again: read, not written again, and the same image.
    const second = await build();
    expect(second.code).toBe(0);
    expect(second.stderr).toContain('CACHED');
    expect(await parses()).toEqual(kept);
    expect((await stat(file)).mtimeMs).toBe(before.mtimeMs);

    // Another text is another parse.
    await writeFile(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY a /b\n');
    expect((await build()).code).toBe(0);
    expect(await parses()).toHaveLength(2);
  });

  it('a local build, a remote one and --check keep caches of their own; a thin cache grows after a long run, and only then', async () => {
    const home = path.join(tmp, 'g');
    const root = path.join(tmp, 'g-root');
    const small = path.join(tmp, 'g-small');
    const long = path.join(tmp, 'g-long');
    await mkdir(small);
    await writeFile(path.join(small, 'Dockerfile'), 'FROM scratch\nCOPY a /a\n');
    await writeFile(path.join(small, 'a'), 'a');
    await mkdir(long);
    // A RUN (executor, runc, layers) that outlasts the 2 s rule.
    await writeFile(path.join(long, 'Dockerfile'), 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "sleep", "2.2"]\n');
    await copyFile(BUSYBOX_PATH, path.join(long, 'busybox'));
    const env = { XDG_CACHE_HOME: home };
    const build = (ctx: string) => runCli(['build', '--root', root, '--progress', 'plain', ctx], { env });

    expect((await runCli(['build', '--check', small], { env })).code).toBe(0);
    const files = await readdir(cacheDir(home));
    expect(files).toEqual([expect.stringMatching(/-build-check\.bin$/)]);

    // A thin cache under the local build's name: graph's (the same bundle, so V8 takes it).
    expect((await runCli(GRAPH, { env })).code).toBe(0);
    const graphCache = (await readdir(cacheDir(home))).find((n) => n.endsWith('-graph.bin'))!;
    const file = path.join(cacheDir(home), graphCache.replace('-graph.bin', '-build.bin'));
    await copyFile(path.join(cacheDir(home), graphCache), file);
    const thin = await stat(file);
    // Short runs keep an accepted cache as it is.
    expect((await build(small)).code).toBe(0);
    expect((await stat(file)).mtimeMs).toBe(thin.mtimeMs);
    expect((await build(long)).code).toBe(0);
    const grown = await stat(file);
    expect(grown.size).toBeGreaterThan(thin.size * 1.1);
    // The grown one is kept (the long build again is all cached: a short run).
    expect((await build(long)).code).toBe(0);
    expect((await stat(file)).mtimeMs).toBe(grown.mtimeMs);
  });

  it('a corrupt cache is rejected by V8 and replaced, and the command still works', async () => {
    const home = path.join(tmp, 'b');
    const ok = await runCli(GRAPH, { env: { XDG_CACHE_HOME: home } });
    const [name] = await readdir(cacheDir(home));
    const file = path.join(cacheDir(home), name!);
    await writeFile(file, Buffer.alloc(4096, 0xab), { mode: 0o600 });
    const again = await runCli(GRAPH, { env: { XDG_CACHE_HOME: home } });
    expect(again).toEqual(ok);
    expect((await stat(file)).size).not.toBe(4096);
  });

  it('a cache directory others can write to is neither read nor written', async () => {
    const home = path.join(tmp, 'c');
    await mkdir(cacheDir(home), { recursive: true });
    await chmod(cacheDir(home), 0o777);
    const r = await runCli(GRAPH, { env: { XDG_CACHE_HOME: home } });
    expect(r.code).toBe(0);
    expect(await readdir(cacheDir(home))).toEqual([]);
  });

  it('keeps the caches of other bundles, the newest 48 in all', async () => {
    const home = path.join(tmp, 'f');
    await mkdir(cacheDir(home), { recursive: true, mode: 0o700 });
    // Another installed version's caches, oldest first.
    const others = Array.from({ length: 50 }, (_, i) => path.join(cacheDir(home), `${String(i).padStart(16, '0')}-v0.0.0-x64-build.bin`));
    for (const [i, f] of others.entries()) {
      await writeFile(f, 'x', { mode: 0o600 });
      await utimes(f, new Date(Date.now() - (100 - i) * 60_000), new Date(Date.now() - (100 - i) * 60_000));
    }
    expect((await runCli(GRAPH, { env: { XDG_CACHE_HOME: home } })).code).toBe(0);
    const left = await readdir(cacheDir(home));
    expect(left).toHaveLength(48);
    expect(left.filter((n) => n.endsWith('-graph.bin'))).toHaveLength(1);
    // The three oldest went; the rest of the other version stayed.
    for (const f of others.slice(0, 3)) expect(left).not.toContain(path.basename(f));
    for (const f of others.slice(3)) expect(left).toContain(path.basename(f));
  });

  it('is not written by --help or a failed run', async () => {
    const home = path.join(tmp, 'e');
    expect((await runCli(['graph', '--help'], { env: { XDG_CACHE_HOME: home } })).code).toBe(0);
    expect((await runCli(BAD_GRAPH, { env: { XDG_CACHE_HOME: home } })).code).not.toBe(0);
    await expect(readdir(cacheDir(home))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('BUILDLITE_NO_COMPILE_CACHE turns it off', async () => {
    const home = path.join(tmp, 'd');
    const r = await runCli(GRAPH, { env: { XDG_CACHE_HOME: home, BUILDLITE_NO_COMPILE_CACHE: '1' } });
    expect(r.code).toBe(0);
    await expect(readdir(cacheDir(home))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
