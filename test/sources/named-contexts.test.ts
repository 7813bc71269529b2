import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NamedContext } from '../../core/build.js';
import { runCli } from '../helpers/cli.js';
import { startGitServer, type GitServer } from '../helpers/git-server.js';
import { SecurityEnv } from '../security/harness.js';

const exec = promisify(execFile);

describe('--build-context: named contexts before stages and images', () => {
  let env: SecurityEnv;
  let dir: string;
  let layout: string;
  let layoutDigest: string;

  beforeAll(async () => {
    env = await SecurityEnv.start();
    dir = await env.context({ 'f.txt': 'from the named dir\n', 'skip.tmp': 'ignored\n', '.dockerignore': '*.tmp\n' });
    // An OCI layout made by a build of ours: busybox plus one file, tagged `v1` in index.json.
    const { builder } = await env.builder();
    try {
      const tar = path.join(env.tmp, 'layout.tar');
      const out = await env.build(builder, `FROM ${env.base}\nRUN echo in-the-layout > /marker\n`, { request: { outputs: [{ type: 'oci', dest: tar, refs: ['example.com/x:v1'] }] } });
      expect(out.error).toBeUndefined();
      layoutDigest = out.result!.imageDigest;
      layout = path.join(env.tmp, 'layout');
      await mkdir(layout);
      await exec('tar', ['-xf', tar, '-C', layout]);
    } finally {
      await builder.close();
    }
  });
  afterAll(async () => {
    await env?.stop();
  });

  async function build(dockerfile: string, named: Record<string, NamedContext>) {
    const { builder } = await env.builder();
    try {
      return await env.build(builder, dockerfile, { request: { namedContexts: named } });
    } finally {
      await builder.close();
    }
  }

  it('a directory: COPY --from, RUN --mount=from, FROM, with its own .dockerignore', async () => {
    const out = await build(
      `FROM ${env.base} AS one\nCOPY --from=src f.txt /f.txt\nRUN --mount=from=src,target=/s cat /f.txt && echo "mounted: $(ls /s | tr '\\n' ' ')"\nFROM src AS fs\nFROM ${env.base}\nCOPY --from=one /f.txt /one.txt\nCOPY --from=fs / /copied/\nRUN echo "copied: $(ls /copied | tr '\\n' ' ')"\n`,
      { src: { type: 'local', source: { dir } } },
    );
    expect(out.error).toBeUndefined();
    expect(out.logs).toContain('from the named dir\n');
    expect(out.logs).toMatch(/mounted: f\.txt /);
    // skip.tmp is left out of copies by the directory's own .dockerignore.
    expect(out.logs).toContain('copied: f.txt \n');
  });

  it('overrides a stage of that name: the stage never runs', async () => {
    const out = await build(`FROM ${env.base} AS deps\nRUN echo stage-ran && exit 1\nFROM ${env.base}\nCOPY --from=deps f.txt /f\nRUN cat /f\n`, { deps: { type: 'local', source: { dir } } });
    expect(out.error).toBeUndefined();
    expect(out.logs).not.toContain('stage-ran');
    expect(out.logs).toContain('from the named dir');
  });

  it('docker-image://: FROM and COPY --from a name no registry has', async () => {
    const ctx = { alpine: { type: 'image', ref: env.base } } as const;
    const out = await build(`FROM alpine\nCOPY --from=alpine /bin/busybox /copy/busybox\nRUN test -x /copy/busybox && echo image-ok\n`, ctx);
    expect(out.error).toBeUndefined();
    expect(out.logs).toContain('image-ok');
    // Without the context the name is a Docker Hub image, which this machine cannot reach.
    const none = await build(`FROM ${env.base}\nCOPY --from=nosuchname-${process.pid} /bin/busybox /b\n`, {});
    expect(none.error).toBeDefined();
  });

  it('oci-layout://: the only image, by tag, and by digest', async () => {
    for (const spec of [{}, { tag: 'v1' }, { digest: layoutDigest }]) {
      const out = await build(`FROM base\nRUN cat /marker\n`, { base: { type: 'oci-layout', source: { dir: layout }, ...spec } as NamedContext });
      expect(out.error, JSON.stringify(spec)).toBeUndefined();
      expect(out.logs).toContain('in-the-layout');
    }
    const wrong = await build(`FROM base\n`, { base: { type: 'oci-layout', source: { dir: layout }, tag: 'nope' } });
    expect(wrong.error?.code).toBe('NOT_FOUND');
    expect(wrong.error?.message).toContain('--build-context base');
    expect(wrong.error?.message).not.toContain(layout);
  });

  it('an oci-layout whose blob is a symlink to a host file is refused, not read', async () => {
    const bad = path.join(env.tmp, 'bad-layout');
    await exec('cp', ['-a', layout, bad]);
    const index = JSON.parse(await readFile(path.join(bad, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const manifest = path.join(bad, 'blobs/sha256', index.manifests[0]!.digest.slice(7));
    await exec('rm', [manifest]);
    await exec('ln', ['-s', '/etc/passwd', manifest]);
    const out = await build(`FROM base\n`, { base: { type: 'oci-layout', source: { dir: bad } } });
    expect(out.error?.code).toBe('NOT_FOUND');
  });

  describe('a git URL', () => {
    let server: GitServer;
    beforeAll(async () => {
      server = await startGitServer();
      const repo = await server.repo('lib', { 'lib/code.txt': 'code from git\n' });
      await repo.tag('v2');
    });
    afterAll(async () => {
      await server?.stop();
    });

    it('COPY --from a git context', async () => {
      const { builder } = await env.builder({ httpPolicy: { allowPrivate: true } });
      try {
        const out = await env.build(builder, `FROM ${env.base}\nCOPY --from=lib lib/code.txt /c\nRUN cat /c\n`, { request: { namedContexts: { lib: { type: 'git', url: `${server.url('lib')}#v2` } } } });
        expect(out.error).toBeUndefined();
        expect(out.logs).toContain('code from git');
      } finally {
        await builder.close();
      }
    });
  });

  it('the CLI flag, each kind, and its usage errors', async () => {
    const df = path.join(env.tmp, 'named.Dockerfile');
    await writeFile(df, `FROM alpine\nCOPY --from=src f.txt /f\nRUN cat /f\n`);
    const root = path.join(env.tmp, 'cli-root');
    const ok = await runCli(['build', '--root', root, '--progress', 'plain', '-f', df, '--build-context', `alpine=docker-image://${env.base}`, '--build-context', `src=${dir}`, dir]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr + ok.stdout).toContain('from the named dir');
    const layoutRun = await runCli(['build', '--root', root, '--progress', 'plain', '-f', df, '--build-context', `alpine=oci-layout://${layout}:v1`, '--build-context', `src=${dir}`, dir]);
    expect(layoutRun.code, layoutRun.stderr).toBe(0);
    for (const [flag, want] of [
      ['src=/no/such/dir', /src: \/no\/such\/dir is not a directory/],
      ['src=docker-image://a@sha256:xyz', /the digest must be sha256/],
      ['src=oci-layout:///tmp@sha256:xyz', /is not a digest/],
      ['src=https://example.com/ctx.tar.gz', /a URL context must be a git repository/],
      ['=x', /want NAME=DIR/],
    ] as const) {
      const r = await runCli(['build', '--root', root, '-f', df, '--build-context', flag, dir]);
      expect(r.code, flag).toBe(2);
      expect(r.stderr, flag).toMatch(want);
    }
  });
});
