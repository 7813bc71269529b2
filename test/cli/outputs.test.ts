import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/cli.js';
import { validateOciLayoutTar } from '../validate/oci-layout.js';
import { inspectRemote, sh, startCliFixture, type CliFixture } from './fixture.js';

/** Every --output type, each checked by a tool other than buildlite. */
describe('buildlite build --output', () => {
  let f: CliFixture;
  let ctx: string;
  let iid: string;
  const ref = () => `${f.registry.host}/cli/out:v1`;
  const o = (name: string) => path.join(f.tmp, name);

  beforeAll(async () => {
    f = await startCliFixture('outputs');
    ctx = await f.context('out', {
      'app.txt': 'the app\n',
      Dockerfile: [
        `FROM ${f.base} AS build`,
        'RUN mkdir -p /out && echo built > /out/artifact && ln -s artifact /out/link && ln /out/artifact /out/hard',
        `FROM ${f.base}`,
        // A deletion in a later layer: whiteouts must be applied in every rootfs output.
        'RUN rm /etc/group && echo gone',
        'COPY --from=build /out /out',
        'COPY app.txt /app/app.txt',
        'CMD ["cat", "/app/app.txt"]',
        '',
      ].join('\n'),
    });
    iid = o('iid');
    // One build, every output at once.
    const r = await f.build([
      '--progress', 'plain', '-t', ref(), '--iidfile', iid,
      '-o', `type=oci,dest=${o('image.oci.tar')}`,
      '-o', `type=local,dest=${o('rootfs')}`,
      '-o', `type=tar,dest=${o('rootfs.tar')}`,
      '-o', `type=registry,name=${ref()}`,
      ctx,
    ]);
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(async () => {
    await f?.close();
  });

  it('type=oci is a valid OCI layout tar: our validator, skopeo and umoci agree', async () => {
    const file = o('image.oci.tar');
    const report = await validateOciLayoutTar(file);
    expect(report.errors).toEqual([]);
    expect(report.unreferenced).toEqual([]);
    expect(report.images).toHaveLength(1);
    const img = report.images[0]!;
    expect(img.manifestDigest).toBe((await readFile(iid, 'utf8')).trim());
    expect(img.refName).toBe('v1');
    expect(img.config.config?.['Cmd']).toEqual(['cat', '/app/app.txt']);

    const { stdout } = await sh('skopeo', ['inspect', `oci-archive:${file}`]);
    const inspect = JSON.parse(stdout) as { Digest: string; Layers: string[] };
    expect(inspect.Digest).toBe(img.manifestDigest);
    expect(inspect.Layers).toEqual(img.manifest.layers.map((l) => l.digest));

    const dir = o('layout');
    await mkdir(dir, { recursive: true });
    await sh('tar', ['-xf', file, '-C', dir]);
    const bundle = o('bundle');
    await sh('umoci', ['unpack', '--rootless', '--image', `${dir}:v1`, bundle]);
    expect(await readFile(path.join(bundle, 'rootfs/app/app.txt'), 'utf8')).toBe('the app\n');
    await expect(stat(path.join(bundle, 'rootfs/etc/group'))).rejects.toThrow();
  });

  it('the validator catches a corrupted layout', async () => {
    const dir = o('bad-layout');
    await mkdir(dir, { recursive: true });
    await sh('tar', ['-xf', o('image.oci.tar'), '-C', dir]);
    const report = (await validateOciLayoutTar(o('image.oci.tar'))).images[0]!;
    const cfg = path.join(dir, 'blobs/sha256', report.manifest.config.digest.slice(7));
    await writeFile(cfg, (await readFile(cfg, 'utf8')).replace('"amd64"', '"arm64"'));
    await writeFile(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"2.0.0"}');
    const bad = o('bad.oci.tar');
    await sh('tar', ['-cf', bad, '-C', dir, 'oci-layout', 'index.json', 'blobs']);
    const errors = (await validateOciLayoutTar(bad)).errors.join('\n');
    expect(errors).toMatch(/imageLayoutVersion/);
    expect(errors).toMatch(/config.*hashes to/);
  });

  it('type=local is the final root filesystem, whiteouts applied, links kept', async () => {
    const root = o('rootfs');
    expect(await readFile(path.join(root, 'app/app.txt'), 'utf8')).toBe('the app\n');
    expect(await readFile(path.join(root, 'out/artifact'), 'utf8')).toBe('built\n');
    await expect(stat(path.join(root, 'etc/group'))).rejects.toThrow();
    expect((await stat(path.join(root, 'etc/passwd'))).isFile()).toBe(true);
    expect((await stat(path.join(root, 'bin/busybox'))).isFile()).toBe(true);
    const { stdout } = await sh('readlink', [path.join(root, 'out/link')]);
    expect(stdout.trim()).toBe('artifact');
    const a = await stat(path.join(root, 'out/artifact'));
    const h = await stat(path.join(root, 'out/hard'));
    expect(h.ino).toBe(a.ino);
  });

  it('type=tar is the same root filesystem as one tar, and dest=- streams it to stdout', async () => {
    const list = async (file: string) => (await sh('tar', ['-tvf', file], { maxBuffer: 64 << 20 })).stdout;
    const listing = await list(o('rootfs.tar'));
    const names = listing.split('\n').filter(Boolean).map((l) => l.split(/\s+/).slice(5).join(' '));
    expect(names).toContain('app/app.txt');
    expect(names).toContain('bin/busybox');
    expect(names).not.toContain('etc/group');
    expect(names.some((n) => n.startsWith('.wh.') || n.includes('/.wh.'))).toBe(false);
    expect(names).toContain('out/link -> artifact');
    expect(names).toContain('out/hard link to out/artifact');
    // Every file of the local output is in the tar, and nothing else.
    const { stdout: local } = await sh('sh', ['-c', `cd ${o('rootfs')} && find . -mindepth 1 | sed 's|^\\./||' | sort`]);
    const tarNames = names.map((n) => n.replace(/ -> .*$/, '').replace(/ link to .*$/, '').replace(/\/$/, '')).sort();
    expect(tarNames).toEqual(local.split('\n').filter(Boolean).sort());

    // Fully cached now: the second build only exports, to stdout.
    const piped = o('piped.tar');
    const code = await new Promise<number>((resolve, reject) => {
      const c = spawn(process.execPath, [CLI, 'build', '--root', f.root, '--progress', 'plain', '-o', 'type=tar,dest=-', ctx], { stdio: ['ignore', 'pipe', 'ignore'] });
      c.stdout.pipe(createWriteStream(piped));
      c.on('error', reject);
      c.on('close', (n) => resolve(n ?? -1));
    });
    expect(code).toBe(0);
    expect(await list(piped)).toBe(listing);
  });

  it('type=registry,name=REF pushes; an independent client reads the same digest', async () => {
    const img = await inspectRemote(ref());
    const digest = (await readFile(iid, 'utf8')).trim();
    const { stdout } = await sh('skopeo', ['inspect', '--tls-verify=false', `docker://${ref()}`]);
    expect((JSON.parse(stdout) as { Digest: string }).Digest).toBe(digest);
    expect(img.manifest.config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
    for (const l of img.manifest.layers) expect(l.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
  });
});
