import { createReadStream } from 'node:fs';
import { mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushBusyboxBase } from '../helpers/base-image.js';
import { runCli } from '../helpers/cli.js';
import { validateOciLayoutTar, type ValidatedImage } from '../validate/oci-layout.js';
import { startCliFixture, type CliFixture } from './fixture.js';

/** The image config and history buildlite writes, against BuildKit's, and reproducibility under SOURCE_DATE_EPOCH. */
describe('built image: config, history, SOURCE_DATE_EPOCH', () => {
  let f: CliFixture;
  beforeAll(async () => {
    f = await startCliFixture('image');
  });
  afterAll(async () => {
    await f?.close();
  });

  /** Builds `dockerfile` into an OCI tar and returns the validated image (the validator's invariants must hold). */
  async function buildImage(name: string, dockerfile: string, extra: string[] = [], files: Record<string, string> = {}): Promise<ValidatedImage> {
    const ctx = await f.context(name, { Dockerfile: dockerfile, ...files });
    const out = path.join(f.tmp, `${name}.oci.tar`);
    // Lowercase: -t is a reference, checked at flag parsing, and repository names are lowercase.
    const r = await f.build(['--progress', 'plain', '-t', `local/${name.toLowerCase()}:latest`, '-o', `type=oci,dest=${out}`, ...extra, ctx]);
    expect(r.code, r.stderr).toBe(0);
    const report = await validateOciLayoutTar(out);
    expect(report.errors).toEqual([]);
    return report.images[0]!;
  }

  it('every config field as BuildKit writes it', async () => {
    const img = await buildImage(
      'fields',
      [
        `FROM ${f.base}`,
        'ENV A=1 B="two words"',
        'WORKDIR /app',
        'USER app:app',
        'EXPOSE 8080 53/udp',
        'LABEL x=y',
        'VOLUME ["/data", "/cache"]',
        'STOPSIGNAL SIGTERM',
        'HEALTHCHECK --interval=5s --timeout=3s --start-period=1s --retries=4 CMD wget -q localhost || exit 1',
        'SHELL ["/bin/sh", "-ec"]',
        'ONBUILD RUN echo onbuild',
        'ENTRYPOINT ["/bin/sh", "-c"]',
        'CMD echo hi',
        '',
      ].join('\n'),
    );
    const c = img.config.config!;
    // The base image's PATH is inherited as it is.
    expect(c['Env']).toEqual(['PATH=/usr/local/bin:/usr/bin:/bin', 'A=1', 'B=two words']);
    expect(c['WorkingDir']).toBe('/app');
    expect(c['User']).toBe('app:app');
    expect(c['ExposedPorts']).toEqual({ '8080/tcp': {}, '53/udp': {} });
    expect(c['Labels']).toEqual({ 'test.base': 'busybox', x: 'y' });
    expect(c['Volumes']).toEqual({ '/data': {}, '/cache': {} });
    expect(c['StopSignal']).toBe('SIGTERM');
    expect(c['Healthcheck']).toEqual({ Test: ['CMD-SHELL', 'wget -q localhost || exit 1'], Interval: 5e9, Timeout: 3e9, StartPeriod: 1e9, Retries: 4 });
    expect(c['Shell']).toEqual(['/bin/sh', '-ec']);
    expect(c['OnBuild']).toEqual(['RUN echo onbuild']);
    expect(c['Entrypoint']).toEqual(['/bin/sh', '-c']);
    // Shell form takes the SHELL in force; ArgsEscaped is a Windows-only field BuildKit leaves out on Linux.
    expect(c['Cmd']).toEqual(['/bin/sh', '-ec', 'echo hi']);
    expect(c['ArgsEscaped']).toBeUndefined();
    expect(img.config.architecture).toBe('amd64');
    expect(img.config.os).toBe('linux');
    // Metadata-only steps: history entries, no layers.
    const own = img.config.history!.slice(-12);
    const keywords = ['ENV', 'WORKDIR', 'USER', 'EXPOSE', 'LABEL', 'VOLUME', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL', 'ONBUILD', 'ENTRYPOINT', 'CMD'];
    expect(own.map((h) => h.created_by!.split(' ')[0])).toEqual(keywords);
    expect(own[0]!.created_by).toBe('ENV A=1 B=two words');
    // WORKDIR creates the directory (a layer); the rest change only the config.
    expect(own.filter((h) => !h.empty_layer).map((h) => h.created_by!.split(' ')[0])).toEqual(['WORKDIR']);
  });

  const chains: [string, string][] = [
    ['single stage', 'FROM BASE\nRUN touch /a\nENV X=1\nCOPY f.txt /f.txt\nRUN true\nWORKDIR /w\nRUN echo x > /w/x\n'],
    ['FROM a stage, twice', 'FROM BASE AS a\nRUN echo a > /a\nENV A=1\nFROM a AS b\nRUN echo b > /b\nLABEL b=1\nFROM b\nCOPY --from=a /a /c\nRUN rm /a\n'],
    ['target is a bare FROM of a stage', 'FROM BASE AS a\nRUN echo a > /a\nCOPY f.txt /\nFROM a\n'],
    ['from scratch', 'FROM scratch\nCOPY f.txt /f.txt\nENV Y=2\nCOPY f.txt /g.txt\n'],
  ];
  it.each(chains)('history has one non-empty entry per layer: %s', async (name, df) => {
    const img = await buildImage(name.replace(/\W+/g, '-'), df.replace('BASE', f.base), [], { 'f.txt': 'f\n' });
    const nonEmpty = img.config.history!.filter((h) => !h.empty_layer).length;
    expect(nonEmpty).toBe(img.manifest.layers.length);
    expect(img.config.rootfs.diff_ids).toHaveLength(img.manifest.layers.length);
    for (const h of img.config.history!) expect(h.created_by).toBeTruthy();
  });

  it('SOURCE_DATE_EPOCH: two clean builds push the same manifest digest, every timestamp clamped', async () => {
    const epoch = 1_700_000_000;
    const files = { 'data.txt': 'data\n' };
    const dockerfile = `FROM ${f.base}\nRUN echo built > /built && mkdir /d && touch /d/x\nCOPY data.txt /data.txt\nENV Z=1\n`;
    const digests: string[] = [];
    for (const run of [1, 2]) {
      const ctx = await f.context(`sde-${run}`, { Dockerfile: dockerfile, ...files });
      // Different mtimes of the context files between the builds: they must not matter.
      await utimes(path.join(ctx, 'data.txt'), new Date(), new Date(Date.now() - run * 3600_000));
      const root = path.join(f.tmp, `sde-root-${run}`);
      const iid = path.join(f.tmp, `sde-iid-${run}`);
      const out = path.join(f.tmp, `sde-${run}.oci.tar`);
      await mkdir(root, { recursive: true });
      const r = await runCli(
        ['build', '--root', root, '--progress', 'plain', '-t', `${f.registry.host}/cli/sde:run${run}`, '--push', '--iidfile', iid, '-o', `type=oci,dest=${out}`, ctx],
        { env: { SOURCE_DATE_EPOCH: String(epoch) } },
      );
      expect(r.code, r.stderr).toBe(0);
      digests.push((await readFile(iid, 'utf8')).trim());
      if (run === 1) {
        const report = await validateOciLayoutTar(out);
        expect(report.errors).toEqual([]);
        const img = report.images[0]!;
        const iso = new Date(epoch * 1000).toISOString();
        expect(img.config.created).toBe(iso);
        for (const h of img.config.history!) expect(Date.parse(h.created!)).toBeLessThanOrEqual(epoch * 1000);
        expect(img.config.history!.slice(-3).map((h) => h.created)).toEqual([iso, iso, iso]);
        // Every file of the build's own layers has an mtime at or before the epoch.
        const dir = path.join(f.tmp, 'sde-layout');
        await mkdir(dir, { recursive: true });
        const own = img.manifest.layers.slice(-2);
        const mtimes = await layerMtimes(out, own.map((l) => l.digest));
        expect(mtimes.length).toBeGreaterThan(3);
        for (const [name, t] of mtimes) expect(t, name).toBeLessThanOrEqual(epoch);
        expect(mtimes.map(([n]) => n)).toEqual(expect.arrayContaining(['built', 'data.txt']));
      }
    }
    expect(digests[0]).toBe(digests[1]);
    await writeFile(path.join(f.tmp, 'sde-done'), digests.join('\n'));
  });

  it('builds FROM a base whose layer is zstd: the layer is kept as pushed, RUN sees its files', async () => {
    await pushBusyboxBase(f.registry.host, 'library/busybox-zstd:latest', { compression: 'zstd' });
    const img = await buildImage('zstd-base', `FROM ${f.registry.host}/library/busybox-zstd:latest\nRUN grep -c '^app:' /etc/passwd > /apps && sh -c 'echo ok' > /ran\n`);
    expect(img.manifest.layers.map((l) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar+zstd', 'application/vnd.oci.image.layer.v1.tar+gzip']);
    const dest = path.join(f.tmp, 'zstd-rootfs');
    const ctx = await f.context('zstd-local', { Dockerfile: `FROM ${f.registry.host}/library/busybox-zstd:latest\nRUN grep -c '^app:' /etc/passwd > /apps\n` });
    const r = await f.build(['--progress', 'plain', '-o', `type=local,dest=${dest}`, ctx]);
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(path.join(dest, 'apps'), 'utf8')).toBe('1\n');
  });
});

/** [name, mtime seconds] of every entry of the given gzip layers inside an OCI layout tar. */
async function layerMtimes(ociTar: string, digests: string[]): Promise<[string, number][]> {
  const want = new Set(digests.map((d) => `blobs/sha256/${d.slice(7)}`));
  const out: [string, number][] = [];
  const outer = tar.extract();
  outer.on('entry', (h, stream, next) => {
    if (!want.has(h.name)) {
      stream.resume();
      stream.on('end', next);
      return;
    }
    const inner = tar.extract();
    inner.on('entry', (ih, s, n) => {
      out.push([ih.name, Math.floor((ih.mtime?.getTime() ?? 0) / 1000)]);
      s.resume();
      s.on('end', n);
    });
    pipeline(stream, createGunzip(), inner).then(() => next(), next);
  });
  await pipeline(createReadStream(ociTar), outer);
  return out;
}
