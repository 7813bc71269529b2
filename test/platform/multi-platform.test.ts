/**
 * `--platform linux/amd64,linux/arm64` in one run: every platform built
 * (arm64 under emulation), one OCI image index pushed, written by
 * type=oci, and each platform in its own directory (`linux_arm64`) of the
 * local and tar outputs. Cross-checked with skopeo, umoci and runc.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sh, startCliFixture, type CliFixture } from '../cli/fixture.js';
import { runCli } from '../helpers/cli.js';
import { pushMultiArchBusybox, type MultiArchBase } from '../helpers/multi-arch-base.js';

const runCliOnRoot = (root: string, args: string[]) => runCli(['build', '--root', root, ...args]);

const run = promisify(execFile);

interface Index {
  mediaType: string;
  manifests: Array<{ mediaType: string; digest: string; platform: { os: string; architecture: string; variant?: string } }>;
}

/** `--progress json` output: the vertex events. */
function vertexEvents(stdout: string): Array<{ vertex: string; name: string; state: string }> {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { type: string; vertex: string; name: string; state: string })
    .filter((e) => e.type === 'vertex');
}

describe('multi-platform builds', () => {
  let f: CliFixture;
  let multi: MultiArchBase;
  let ctx: string;
  const ref = () => `${f.registry.host}/platform/app:multi`;
  const o = (name: string) => path.join(f.tmp, name);
  let first: { code: number; stdout: string; stderr: string };

  beforeAll(async () => {
    f = await startCliFixture('platform-multi');
    multi = await pushMultiArchBusybox(f.registry.host);
    ctx = await f.context('multi', {
      'a.txt': 'the app\n',
      Dockerfile: [`FROM ${multi.ref}`, 'RUN uname -m > /machine', 'COPY a.txt /a.txt', 'CMD ["uname", "-m"]', ''].join('\n'),
    });
    first = await f.build([
      '--progress', 'json', '--platform', 'linux/amd64,linux/arm64', '-t', ref(), '--push',
      '--metadata-file', o('meta.json'),
      '-o', `type=oci,dest=${o('image.oci.tar')}`,
      '-o', `type=local,dest=${o('rootfs')}`,
      '-o', `type=tar,dest=${o('rootfs.tar')}`,
      ctx,
    ]);
  });
  afterAll(async () => {
    await f?.close();
  });

  it('pushes an index whose manifests skopeo lists with their platforms, each image for its platform', async () => {
    expect(first.code, first.stderr).toBe(0);
    const { stdout } = await sh('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref()}`]);
    const index = JSON.parse(stdout) as Index;
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.manifests.map((m) => m.platform)).toEqual([
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64' },
    ]);
    for (const m of index.manifests) {
      const { stdout: cfg } = await sh('skopeo', ['inspect', '--config', '--raw', '--tls-verify=false', `docker://${f.registry.host}/platform/app@${m.digest}`]);
      expect(JSON.parse(cfg)).toMatchObject({ os: 'linux', architecture: m.platform.architecture });
    }
    const meta = JSON.parse(await readFile(o('meta.json'), 'utf8')) as { 'containerimage.digest': string; platforms: Array<{ platform: string; imageDigest: string }> };
    expect(meta.platforms.map((p) => [p.platform, p.imageDigest])).toEqual(index.manifests.map((m) => [`linux/${m.platform.architecture}`, m.digest]));
  });

  it('shows the platform on each step', () => {
    const names = new Set(vertexEvents(first.stdout).map((e) => e.name));
    expect(names).toContain('[linux/amd64 stage-0 2/4] RUN uname -m > /machine');
    expect(names).toContain('[linux/arm64 stage-0 2/4] RUN uname -m > /machine');
  });

  it('the arm64 image, unpacked with umoci and run with runc, prints aarch64', async () => {
    const layout = o('arm64-layout');
    await sh('skopeo', ['copy', '--override-arch', 'arm64', '--src-tls-verify=false', `docker://${ref()}`, `oci:${layout}:arm64`]);
    const bundle = o('arm64-bundle');
    await sh('umoci', ['unpack', '--image', `${layout}:arm64`, bundle]);
    const configPath = path.join(bundle, 'config.json');
    const spec = JSON.parse(await readFile(configPath, 'utf8')) as { process: { args: string[]; terminal: boolean } };
    expect(spec.process.args).toEqual(['uname', '-m']);
    spec.process.terminal = false;
    await writeFile(configPath, JSON.stringify(spec));
    const id = `bl-platform-test-${process.pid}`;
    try {
      const { stdout } = await run('runc', ['run', '--bundle', bundle, id]);
      expect(stdout).toBe('aarch64\n');
    } finally {
      await run('runc', ['delete', '--force', id]).catch(() => undefined);
    }
    expect(await readFile(path.join(bundle, 'rootfs/machine'), 'utf8')).toBe('aarch64\n');
  });

  it('type=oci writes the index; type=local and type=tar put each platform in its own directory', async () => {
    const dir = o('oci');
    await mkdir(dir);
    await sh('tar', ['-xf', o('image.oci.tar'), '-C', dir]);
    const top = JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8')) as Index;
    expect(top.manifests).toHaveLength(1);
    expect(top.manifests[0]!.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    const inner = JSON.parse(await readFile(path.join(dir, 'blobs/sha256', top.manifests[0]!.digest.slice(7)), 'utf8')) as Index;
    expect(inner.manifests.map((m) => m.platform.architecture)).toEqual(['amd64', 'arm64']);
    // The pushed index is the same document.
    const meta = JSON.parse(await readFile(o('meta.json'), 'utf8')) as { 'containerimage.digest': string };
    expect(top.manifests[0]!.digest).toBe(meta['containerimage.digest']);

    expect(await readFile(o('rootfs/linux_amd64/machine'), 'utf8')).toBe('x86_64\n');
    expect(await readFile(o('rootfs/linux_arm64/machine'), 'utf8')).toBe('aarch64\n');
    expect(await readFile(o('rootfs/linux_arm64/a.txt'), 'utf8')).toBe('the app\n');
    const { stdout: list } = await sh('tar', ['-tf', o('rootfs.tar')]);
    expect(list.split('\n')).toEqual(expect.arrayContaining(['linux_amd64/machine', 'linux_arm64/machine', 'linux_arm64/bin/busybox']));
  });

  it('the second build is fully cached for every platform and pushes the same index', async () => {
    const r = await f.build(['--progress', 'json', '--platform', 'linux/amd64,linux/arm64', '-t', ref(), '--push', '--metadata-file', o('meta2.json'), ctx]);
    expect(r.code, r.stderr).toBe(0);
    const events = vertexEvents(r.stdout);
    expect(events.filter((e) => e.state === 'started')).toEqual([]);
    const cached = events.filter((e) => e.state === 'cached').map((e) => e.name);
    expect(cached).toEqual(expect.arrayContaining(['[linux/amd64 stage-0 2/4] RUN uname -m > /machine', '[linux/arm64 stage-0 2/4] RUN uname -m > /machine']));
    const m1 = JSON.parse(await readFile(o('meta.json'), 'utf8')) as { 'containerimage.digest': string };
    const m2 = JSON.parse(await readFile(o('meta2.json'), 'utf8')) as { 'containerimage.digest': string; cache: { misses: number } };
    expect(m2.cache.misses).toBe(0);
    expect(m2['containerimage.digest']).toBe(m1['containerimage.digest']);
  });

  it('a cross-compilation Dockerfile runs its build stage once, natively, for both targets', async () => {
    const cross = await f.context('cross', {
      Dockerfile: [
        `FROM --platform=$BUILDPLATFORM ${f.base} AS build`,
        'RUN for a in amd64 arm64; do echo "binary for $a, built on $(uname -m)" > /out-$a; done',
        `FROM ${multi.ref}`,
        'ARG TARGETARCH',
        'COPY --from=build /out-$TARGETARCH /app',
        'RUN uname -m >> /app',
        '',
      ].join('\n'),
    });
    const r = await f.build(['--progress', 'json', '--platform', 'linux/amd64,linux/arm64', '-o', `type=local,dest=${o('cross')}`, cross]);
    expect(r.code, r.stderr).toBe(0);
    const started = vertexEvents(r.stdout).filter((e) => e.state === 'started');
    const buildRuns = started.filter((e) => e.name.includes(' build 2/2] RUN'));
    expect(buildRuns.map((e) => e.name)).toEqual(['[linux/amd64 build 2/2] RUN for a in amd64 arm64; do echo "binary for $a, built on $(uname -m)" > /out-$a; done']);
    expect(await readFile(o('cross/linux_amd64/app'), 'utf8')).toBe('binary for amd64, built on x86_64\nx86_64\n');
    expect(await readFile(o('cross/linux_arm64/app'), 'utf8')).toBe('binary for arm64, built on x86_64\naarch64\n');
  });

  it('an index entry carries the variant where the platform has one, and a COPY of context files on scratch is one step for all', async () => {
    const c = await f.context('variants', { 'a.txt': 'same for all\n', Dockerfile: 'FROM scratch\nCOPY a.txt /a.txt\n' });
    const target = `${f.registry.host}/platform/variants:1`;
    const r = await f.build(['--progress', 'json', '--platform', 'linux/arm64,linux/arm/v7,linux/amd64', '-t', target, '--push', c]);
    expect(r.code, r.stderr).toBe(0);
    const { stdout } = await sh('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${target}`]);
    const index = JSON.parse(stdout) as Index;
    expect(index.manifests.map((m) => m.platform)).toEqual([
      { os: 'linux', architecture: 'arm64' },
      { os: 'linux', architecture: 'arm', variant: 'v7' },
      { os: 'linux', architecture: 'amd64' },
    ]);
    const { stdout: cfg } = await sh('skopeo', ['inspect', '--config', '--raw', '--tls-verify=false', `docker://${f.registry.host}/platform/variants@${index.manifests[1]!.digest}`]);
    expect(JSON.parse(cfg)).toMatchObject({ os: 'linux', architecture: 'arm', variant: 'v7' });
    // The three images share the one layer the one COPY made.
    const copies = vertexEvents(r.stdout).filter((e) => e.state === 'started' && e.name.includes('COPY a.txt'));
    expect(copies).toHaveLength(1);
  });

  it('a cache exported by a multi-platform build serves both platforms of a build on an empty root', async () => {
    const cache = o('cache-dir');
    const exported = await f.build(['--progress', 'json', '--platform', 'linux/amd64,linux/arm64', '--cache-to', `type=local,dest=${cache},mode=max`, ctx]);
    expect(exported.code, exported.stderr).toBe(0);
    const r = await runCliOnRoot(o('fresh-root'), ['--progress', 'json', '--platform', 'linux/amd64,linux/arm64', '--cache-from', `type=local,src=${cache}`, '--metadata-file', o('meta-cache.json'), ctx]);
    expect(r.code, r.stderr).toBe(0);
    const events = vertexEvents(r.stdout);
    expect(events.filter((e) => e.state === 'started').map((e) => e.name)).toEqual([]);
    expect(events.filter((e) => e.state === 'cached').map((e) => e.name)).toEqual(expect.arrayContaining(['[linux/amd64 stage-0 2/4] RUN uname -m > /machine', '[linux/arm64 stage-0 2/4] RUN uname -m > /machine']));
    const m1 = JSON.parse(await readFile(o('meta.json'), 'utf8')) as { 'containerimage.digest': string };
    const m3 = JSON.parse(await readFile(o('meta-cache.json'), 'utf8')) as { 'containerimage.digest': string };
    expect(m3['containerimage.digest']).toBe(m1['containerimage.digest']);
  });
});

