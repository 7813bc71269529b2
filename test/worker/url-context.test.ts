/**
 * URL build contexts through a build service (BuildKit's remote contexts):
 * the client sends the URL, the API checks it under the operator's URL policy
 * before anything is queued, and the worker fetches it with the builder code
 * an embedded build uses, so both give the same image. A git repository is
 * served on loopback by `git http-backend`, tarballs and a Dockerfile by a
 * node:http server; the operator allows exactly 127.0.0.1 (serve and worker
 * `--allow-url-network 127.0.0.1/32`), so other loopback and private
 * addresses stay refused.
 */
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildliteClient } from '../../api/index.js';
import { runCli } from '../helpers/cli.js';
import { startFileServer, type FileServer } from '../helpers/file-server.js';
import { startGitServer, type GitServer } from '../helpers/git-server.js';
import { cleanupRoots, logLines, startServiceWithBase, TOKENS, type ServiceWithBase } from '../helpers/service.js';

const exec = promisify(execFile);
const EPOCH = '1704067200';
const ALLOW = ['--allow-url-network', '127.0.0.1/32'];

interface Outcome {
  readonly code: number;
  readonly digest?: string;
  readonly out: string;
}

describe('URL contexts through a build service: the worker fetches them', () => {
  let s: ServiceWithBase;
  let gitSrv: GitServer;
  let files: FileServer;
  let tmp: string;
  let localRoot: string;

  beforeAll(async () => {
    s = await startServiceWithBase({ workers: 1, apiArgs: ALLOW, workerArgs: ALLOW });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-urlctx-'));
    localRoot = path.join(tmp, 'local-root');
    gitSrv = await startGitServer();
    const repo = await gitSrv.repo('ctx', {
      'README.md': 'not in the subdir\n',
      'app/Dockerfile': `FROM ${s.base}\nWORKDIR /app\nCOPY . .\nRUN cat hello.txt && test ! -e README.md && ls -lR /app > /listing\n`,
      'app/hello.txt': 'hello from git\n',
      'app/docker/alt.Dockerfile': `FROM ${s.base}\nCOPY hello.txt /h\nRUN echo alt-dockerfile && cat /h\n`,
    });
    await repo.tag('v1');
    // Moves on after the tag: a build of #v1 must not see it.
    await repo.commit({ 'app/hello.txt': 'after the tag\n' });

    const src = path.join(tmp, 'tarball-src');
    await mkdir(path.join(src, 'sub'), { recursive: true });
    await writeFile(path.join(src, 'Dockerfile'), `FROM ${s.base}\nCOPY sub/data.txt /data.txt\nRUN cat /data.txt\n`);
    await writeFile(path.join(src, 'sub/data.txt'), 'data from a tarball\n');
    const tarball = path.join(tmp, 'ctx.tar.gz');
    await exec('tar', ['-czf', tarball, '--mtime=2023-01-01 00:00:00Z', '--owner=0', '--group=0', '-C', src, '.']);
    const dockerfile = path.join(tmp, 'plain.Dockerfile');
    await writeFile(dockerfile, `FROM ${s.base}\nRUN echo only-a-dockerfile > /o\n`);
    files = await startFileServer('127.0.0.1', (req, res) => {
      const file = req.url === '/ctx.tar.gz' ? tarball : req.url === '/Dockerfile' ? dockerfile : undefined;
      if (!file) return void res.writeHead(404).end();
      createReadStream(file).pipe(res);
    });
  });
  afterAll(async () => {
    await files?.stop();
    await gitSrv?.stop();
    await cleanupRoots([localRoot]);
    await s?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  /** `buildlite build URL`, embedded (the developer's loopback opt-in) or through the service (the operator's). */
  async function build(mode: 'local' | 'server', name: string, url: string, args: readonly string[] = []): Promise<Outcome> {
    const meta = path.join(tmp, `${name}.${mode}.json`);
    const where = mode === 'local' ? ['--root', localRoot, '--allow-private-urls'] : ['--server', s.svc.addr, '--token', TOKENS.alice];
    const r = await runCli(['build', ...where, '--progress', 'plain', '-t', `${s.registry.host}/urlctx/${name}:${mode}`, '--metadata-file', meta, ...args, url], { env: { SOURCE_DATE_EPOCH: EPOCH } });
    const m = JSON.parse(await readFile(meta, 'utf8').catch(() => '{}')) as { 'containerimage.digest'?: string };
    return { code: r.code, out: r.stdout + r.stderr, ...(m['containerimage.digest'] ? { digest: m['containerimage.digest'] } : {}) };
  }

  async function both(name: string, url: string, args: readonly string[] = []): Promise<{ local: Outcome; server: Outcome }> {
    const local = await build('local', name, url, args);
    const server = await build('server', name, url, args);
    expect(local.code, local.out).toBe(0);
    expect(server.code, server.out).toBe(0);
    expect(server.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(server.digest, `--- local:\n${local.out.slice(-1500)}\n--- server:\n${server.out.slice(-1500)}`).toBe(local.digest);
    return { local, server };
  }

  it('a git URL at a tag and a subdir: the same image as the embedded build, and the client uploads nothing', async () => {
    const stored = logLines(s.svc.api.output()).filter((l) => l['msg'] === 'context stored').length;
    const { server } = await both('git', `${gitSrv.url('ctx')}#v1:app`);
    expect(server.out).toContain('hello from git');
    expect(server.out).not.toContain('after the tag');
    const queued = logLines(s.svc.api.output()).filter((l) => l['msg'] === 'build queued');
    expect(queued.at(-1)?.['context']).toBe(`${gitSrv.url('ctx')}#v1:app`);
    // No upload: the API stored no context for it.
    expect(logLines(s.svc.api.output()).filter((l) => l['msg'] === 'context stored').length).toBe(stored);
  });

  it('-f names a Dockerfile inside the git context, as in an embedded build', async () => {
    const { server } = await both('git-f', `${gitSrv.url('ctx')}#v1:app`, ['-f', 'docker/alt.Dockerfile']);
    expect(server.out).toContain('alt-dockerfile');
    const missing = await build('server', 'git-missing', `${gitSrv.url('ctx')}#v1:app`, ['-f', 'nope/Dockerfile']);
    expect(missing.code).toBe(1);
    expect(missing.out).toMatch(/has no Dockerfile nope\/Dockerfile/);
  });

  it('a tarball URL and a plain Dockerfile URL: fetched and built by the worker, the same images as embedded', async () => {
    const tar = await both('tarball', `http://127.0.0.1:${files.port}/ctx.tar.gz`);
    expect(tar.server.out).toContain('data from a tarball');
    const plain = await both('plain', `http://127.0.0.1:${files.port}/Dockerfile`);
    expect(plain.server.out).toContain('only-a-dockerfile');
  });

  it('a URL the operator does not allow is refused at submit: a clear error, exit 1, nothing queued or fetched', async () => {
    const admin = new BuildliteClient(s.svc.addr, TOKENS.admin);
    try {
      const before = (await admin.list({ limit: 1000 })).length;
      const seen = files.seen.length;
      const cases: Array<[string, RegExp]> = [
        // Loopback, but not the one address the operator allowed.
        [`http://127.0.0.2:${files.port}/ctx.tar.gz`, /127\.0\.0\.2 is a loopback address, which URL fetches may not reach; the build service operator allows it with buildlite worker --allow-url-network CIDR \(or --allow-private-urls\), given to buildlite serve too/],
        // The cloud metadata service.
        ['http://169.254.169.254/latest/ctx.tar.gz', /169\.254\.169\.254 is a link-local address/],
        ['https://10.1.2.3/repo.git#main:app', /10\.1\.2\.3 is a private address/],
        // Credentials in the URL: refused and never echoed, as in an embedded build.
        ['https://user:s3cret@127.0.0.1/repo.git#v1', /credentials in a git URL are refused/],
        [`http://user:s3cret@127.0.0.1:${files.port}/ctx.tar.gz`, /URLs with credentials are refused/],
      ];
      for (const [url, why] of cases) {
        const r = await runCli(['build', '--server', s.svc.addr, '--token', TOKENS.alice, '--progress', 'plain', url]);
        const out = r.stdout + r.stderr;
        expect(r.code, out).toBe(1);
        expect(out).toMatch(why);
        expect(out).not.toContain('s3cret');
      }
      // A git named context is fetched by the worker as well: the same answer at submit.
      const ctxDir = path.join(tmp, 'plain-ctx');
      await mkdir(ctxDir, { recursive: true });
      await writeFile(path.join(ctxDir, 'Dockerfile'), `FROM ${s.base}\nCOPY --from=lib a.txt /a\n`);
      const named = await runCli(['build', '--server', s.svc.addr, '--token', TOKENS.alice, '--progress', 'plain', '--build-context', 'lib=https://10.1.2.3/lib.git#main', ctxDir]);
      expect(named.code, named.stderr).toBe(1);
      expect(named.stderr).toMatch(/10\.1\.2\.3 is a private address/);
      expect((await admin.list({ limit: 1000 })).length).toBe(before);
      expect(files.seen.length).toBe(seen);
      expect(s.svc.api.output()).not.toContain('s3cret');
    } finally {
      admin.close();
    }
  });

  it('the API: a URL context carries no Dockerfile text, no upload and no digest', async () => {
    const c = new BuildliteClient(s.svc.addr, TOKENS.alice);
    try {
      const url = `${gitSrv.url('ctx')}#v1:app`;
      await expect(c.submit({ dockerfile: `FROM ${s.base}\n`, context_url: url })).rejects.toThrow(/read from inside the fetched context/);
      await expect(c.submit({ context_url: url, context_digest: `sha256:${'a'.repeat(64)}` })).rejects.toThrow(/either context_url or context_digest/);
      await expect(c.submit({ dockerfile: `FROM ${s.base}\n`, context_file: 'Dockerfile' })).rejects.toThrow(/context_url, which is not set/);
      await expect(c.submit({ context_url: 'ftp://127.0.0.1/ctx.tar' })).rejects.toThrow(/ftp: URLs are not fetched/);
    } finally {
      c.close();
    }
  });
});

describe('a private git URL context through a build service: a GIT_AUTH_TOKEN secret, as in an embedded build', () => {
  let s: ServiceWithBase;
  let gitSrv: GitServer;
  const token = 'tok-url-ctx-5e1f0a9c';

  beforeAll(async () => {
    // Secrets are held in the API process's memory: only its embedded worker runs builds that carry them.
    s = await startServiceWithBase({ workers: 0, embedded: true, apiArgs: ALLOW });
    gitSrv = await startGitServer();
    const repo = await gitSrv.repo('private', { 'Dockerfile': `FROM ${s.base}\nCOPY secret-free.txt /f\nRUN cat /f\n`, 'secret-free.txt': 'private repository content\n' });
    await repo.tag('v1');
    gitSrv.requireAuth = `basic ${Buffer.from(`x-access-token:${token}`).toString('base64')}`;
  });
  afterAll(async () => {
    await gitSrv?.stop();
    await s?.stop();
  });

  it('without the secret git is refused; with it the worker fetches and builds; the token lands in no log or event', async () => {
    const url = `${gitSrv.url('private')}#v1`;
    const base = ['build', '--server', s.svc.addr, '--token', TOKENS.alice, '--progress', 'plain', url];
    const denied = await runCli(base);
    expect(denied.code, denied.stderr).toBe(1);
    expect(denied.stdout + denied.stderr).toMatch(/git ls-remote failed: .*could not read Username/);

    const ok = await runCli(['build', '--secret', 'id=GIT_AUTH_TOKEN,env=PRIVATE_GIT_TOKEN', ...base.slice(1)], { env: { PRIVATE_GIT_TOKEN: token } });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout + ok.stderr).toContain('private repository content');
    expect(ok.stdout + ok.stderr).not.toContain(token);
    expect(s.svc.api.output()).not.toContain(token);
  });
});
