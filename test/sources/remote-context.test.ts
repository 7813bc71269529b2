import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { startFileServer, type FileServer } from '../helpers/file-server.js';
import { git, startGitServer, type GitServer, type TestRepo } from '../helpers/git-server.js';
import { SecurityEnv } from '../security/harness.js';

const exec = promisify(execFile);

interface Meta {
  cache?: { hits: number; misses: number };
  error?: { code: string; message: string };
}

/** `buildlite build` embedded, with --metadata-file; loopback URLs need the developer's opt-in (passed unless `optIn: false`). */
async function build(env: SecurityEnv, args: string[], optIn = true): Promise<{ code: number; out: string; meta: Meta }> {
  const meta = path.join(env.tmp, `meta-${Math.random().toString(36).slice(2)}.json`);
  const r = await runCli(['build', '--root', path.join(env.tmp, 'cli-root'), '--progress', 'plain', '--metadata-file', meta, ...(optIn ? ['--allow-private-urls'] : []), ...args]);
  const text = await readFile(meta, 'utf8').catch(() => '{}');
  return { code: r.code, out: r.stdout + r.stderr, meta: JSON.parse(text) as Meta };
}

describe('build contexts from URLs (fetched by the builder, under the URL policy)', () => {
  let env: SecurityEnv;
  let server: GitServer;
  let repo: TestRepo;

  beforeAll(async () => {
    env = await SecurityEnv.start();
    server = await startGitServer();
    repo = await server.repo('ctx', {
      'README.md': 'not in the subdir\n',
      'app/Dockerfile': `FROM ${env.base}\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt && ls -A / | grep -c README || true\n`,
      'app/hello.txt': 'hello from git\n',
      'app/docker/alt.Dockerfile': `FROM ${env.base}\nCOPY hello.txt /h\nRUN echo alt && cat /h\n`,
    });
    await repo.tag('v1');
  });
  afterAll(async () => {
    await server?.stop();
    await env?.stop();
  });

  it('a git URL at a tag and a subdir: the Dockerfile and files from there; the same commit again is all cache, with no fetch', async () => {
    const url = `${server.url('ctx')}#v1:app`;
    const first = await build(env, [url]);
    expect(first.code, first.out).toBe(0);
    expect(first.out).toContain('hello from git');
    const fetches = server.counts.uploadPack;

    const second = await build(env, [url]);
    expect(second.code, second.out).toBe(0);
    expect(second.meta.cache).toEqual({ hits: first.meta.cache!.hits + first.meta.cache!.misses, misses: 0 });
    expect(second.out).not.toContain('hello from git');
    expect(server.counts.uploadPack).toBe(fetches);

    await repo.commit({ 'app/hello.txt': 'hello again\n' });
    await git(repo.dir, 'tag', '-f', 'v1');
    const third = await build(env, [url]);
    expect(third.code, third.out).toBe(0);
    expect(third.out).toContain('hello again');
    expect(third.meta.cache?.misses).toBeGreaterThan(0);
    expect(server.counts.uploadPack).toBeGreaterThan(fetches);
  });

  it('-f names a file inside the context', async () => {
    const r = await build(env, ['-f', 'docker/alt.Dockerfile', `${server.url('ctx')}#v1:app`]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('alt');
    const missing = await build(env, ['-f', 'nope/Dockerfile', `${server.url('ctx')}#v1:app`]);
    expect(missing.code).toBe(1);
    expect(missing.out).toMatch(/has no Dockerfile nope\/Dockerfile/);
  });

  it('loopback without --allow-private-urls is refused before git runs', async () => {
    const refs = server.counts.infoRefs;
    const r = await build(env, [`${server.url('ctx')}#v1:app`], false);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/127\.0\.0\.1 is a loopback address.*--allow-private-urls/);
    expect(server.counts.infoRefs).toBe(refs);
  });

  describe('a tarball over http', () => {
    let files: FileServer;
    let tarball: string;
    let dockerfile: string;

    beforeAll(async () => {
      const dir = path.join(env.tmp, 'tarball-src');
      await mkdir(path.join(dir, 'sub'), { recursive: true });
      await writeFile(path.join(dir, 'Dockerfile'), `FROM ${env.base}\nCOPY sub/data.txt /data.txt\nRUN cat /data.txt\n`);
      await writeFile(path.join(dir, 'sub/data.txt'), 'data from a tarball\n');
      tarball = path.join(env.tmp, 'ctx.tar.gz');
      await exec('tar', ['-czf', tarball, '-C', dir, '.']);
      dockerfile = path.join(env.tmp, 'plain.Dockerfile');
      await writeFile(dockerfile, `FROM ${env.base}\nRUN echo only-a-dockerfile\n`);
      files = await startFileServer('127.0.0.1', (req, res) => {
        const file = req.url === '/ctx.tar.gz' ? tarball : req.url === '/Dockerfile' ? dockerfile : undefined;
        if (!file) return void res.writeHead(404).end();
        createReadStream(file).pipe(res);
      });
    });
    afterAll(async () => {
      await files?.stop();
    });

    it('is unpacked and built, its Dockerfile taken from inside it', async () => {
      const r = await build(env, [`http://127.0.0.1:${files.port}/ctx.tar.gz`]);
      expect(r.code, r.out).toBe(0);
      expect(r.out).toContain('data from a tarball');
    });

    it('a URL that is a Dockerfile builds with an empty context', async () => {
      const r = await build(env, [`http://127.0.0.1:${files.port}/Dockerfile`]);
      expect(r.code, r.out).toBe(0);
      expect(r.out).toContain('only-a-dockerfile');
    });

    it('is refused on loopback without the opt-in', async () => {
      const before = files.seen.length;
      const r = await build(env, [`http://127.0.0.1:${files.port}/ctx.tar.gz`], false);
      expect(r.code).toBe(1);
      expect(r.out).toMatch(/loopback address/);
      expect(files.seen.length).toBe(before);
    });
  });
});
