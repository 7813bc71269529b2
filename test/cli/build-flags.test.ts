import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectRemote, sh, startCliFixture, type CliFixture } from './fixture.js';

/** Each `buildlite build` flag, driven as a user would, checked in what the build produced. */
describe('buildlite build flags', () => {
  let f: CliFixture;
  let ctx: string;

  beforeAll(async () => {
    f = await startCliFixture('flags');
    ctx = await f.context('flags', {
      'hello.txt': 'hello from the context\n',
      // Not named Dockerfile: -f must be honoured.
      'build.Dockerfile': [
        'ARG BASE',
        'FROM ${BASE} AS base',
        'ARG GIVEN',
        'ARG FROM_ENV',
        'RUN echo "given=$GIVEN env=$FROM_ENV" > /args.txt',
        'FROM base AS other',
        'RUN echo other > /other.txt',
        'FROM base AS final',
        'LABEL from.dockerfile=yes',
        'COPY hello.txt /hello.txt',
        'CMD ["cat", "/hello.txt"]',
        '',
      ].join('\n'),
    });
  });
  afterAll(async () => {
    await f?.close();
  });

  const common = () => ['-f', path.join(ctx, 'build.Dockerfile'), '--build-arg', `BASE=${f.base}`, '--progress', 'plain'];

  it('-f, -t twice, --push, --build-arg K=V and K from env, --label, --platform, --insecure-registry, --iidfile, --metadata-file, -o local', async () => {
    const ref1 = `${f.registry.host}/cli/flags:one`;
    const ref2 = `${f.registry.host}/cli/flags:two`;
    const iid = path.join(f.tmp, 'iid');
    const meta = path.join(f.tmp, 'meta.json');
    const out = path.join(f.tmp, 'rootfs');
    const r = await f.build(
      [
        ...common(), '--build-arg', 'GIVEN=1', '--build-arg', 'FROM_ENV', '--label', 'org.example.team=blue', '--label', 'empty=',
        '--platform', 'linux/amd64', '--insecure-registry', f.registry.host,
        '-t', ref1, '-t', ref2, '--push', '--iidfile', iid, '--metadata-file', meta, '--output', `type=local,dest=${out}`, ctx,
      ],
      { env: { FROM_ENV: 'from-the-environment' } },
    );
    expect(r.stderr).toContain('#done image');
    expect(r.code).toBe(0);
    const digest = (await readFile(iid, 'utf8')).trim();
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);

    const m = JSON.parse(await readFile(meta, 'utf8')) as Record<string, unknown>;
    expect(m['containerimage.digest']).toBe(digest);
    expect(m['containerimage.config.digest']).toMatch(/^sha256:/);
    expect(m['pushed']).toEqual([ref1, ref2]);
    expect(m['image.name']).toBe(`${ref1},${ref2}`);
    const cache = m['cache'] as { hits: number; misses: number };
    expect(cache.misses).toBeGreaterThanOrEqual(3); // pull, RUN, COPY at least
    expect(typeof cache.hits).toBe('number');

    for (const ref of [ref1, ref2]) {
      const { stdout } = await sh('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`]);
      const i = JSON.parse(stdout) as { Digest: string; Labels: Record<string, string>; Architecture: string; Os: string };
      expect(i.Digest).toBe(digest);
      // The base image's own label is inherited.
      expect(i.Labels).toEqual({ 'test.base': 'busybox', 'from.dockerfile': 'yes', 'org.example.team': 'blue', empty: '' });
      expect(i.Architecture).toBe('amd64');
      expect(i.Os).toBe('linux');
    }
    // The final stage is the default target; the build args reached the RUN.
    expect(await readFile(path.join(out, 'args.txt'), 'utf8')).toBe('given=1 env=from-the-environment\n');
    expect(await readFile(path.join(out, 'hello.txt'), 'utf8')).toBe('hello from the context\n');
    await expect(stat(path.join(out, 'other.txt'))).rejects.toThrow();
    // --root holds the state.
    expect(await readdir(f.root)).toEqual(expect.arrayContaining(['content', 'images.json']));
  });

  it('a repeat build is cached; --no-cache runs every step; --no-cache-filter runs only that stage', async () => {
    const args = [...common(), '--build-arg', 'GIVEN=2', ctx];
    const metaOf = async (extra: string[]) => {
      const meta = path.join(f.tmp, `meta-${Math.random()}.json`);
      const r = await f.build([...extra, '--metadata-file', meta, ...args]);
      expect(r.code, r.stderr).toBe(0);
      return { out: r.stderr, ...(JSON.parse(await readFile(meta, 'utf8')) as { cache: { hits: number; misses: number } }) };
    };
    const first = await metaOf([]);
    expect(first.cache.misses).toBeGreaterThan(0);
    const again = await metaOf([]);
    expect(again.cache.misses).toBe(0);
    expect(again.out).toMatch(/CACHED/);
    const none = await metaOf(['--no-cache']);
    expect(none.cache.hits).toBe(0);
    const filtered = await metaOf(['--no-cache-filter', 'final']);
    expect(filtered.cache.misses).toBeGreaterThan(0);
    expect(filtered.cache.hits).toBeGreaterThan(0);
    // The RUN of stage "base" stayed cached, the COPY of "final" ran.
    expect(filtered.out).not.toMatch(/#\d+ \[base 2\/2\] RUN[^\n]*\n#\d+ DONE/);
  });

  it('--target builds up to that stage', async () => {
    const out = path.join(f.tmp, 'target-out');
    const r = await f.build([...common(), '--target', 'other', '-o', `type=local,dest=${out}`, ctx]);
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(path.join(out, 'other.txt'), 'utf8')).toBe('other\n');
    await expect(stat(path.join(out, 'hello.txt'))).rejects.toThrow();
    const bad = await f.build([...common(), '--target', 'nosuchstage', ctx]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/nosuchstage/);
  });

  it('--quiet prints the image digest alone on stdout', async () => {
    const r = await f.build([...common(), '-q', ctx]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/);
    expect(r.stderr).toBe('');
  });

  it('--secret from a file and from the environment reaches RUN, and no log line, layer or history entry', async () => {
    const secretFile = path.join(f.tmp, 'token.txt');
    await writeFile(secretFile, 's3cr3t-from-file');
    const sctx = await f.context('secret', {
      Dockerfile: [
        `FROM ${f.base}`,
        'RUN --mount=type=secret,id=file --mount=type=secret,id=env,env=ENVSECRET ' +
          'echo "file=$(cat /run/secrets/file) env=$ENVSECRET" && echo "sizes $(wc -c < /run/secrets/file) ${#ENVSECRET}" && touch /done',
        '',
      ].join('\n'),
    });
    const tarOut = path.join(f.tmp, 'secret.tar');
    const ociOut = path.join(f.tmp, 'secret-oci.tar');
    const r = await f.build(
      ['--progress', 'plain', '--secret', `id=file,src=${secretFile}`, '--secret', 'id=env,env=MY_SECRET_VAR',
        '-o', `type=tar,dest=${tarOut}`, '-o', `type=oci,dest=${ociOut}`, sctx],
      { env: { MY_SECRET_VAR: 'env-s3cr3t-value' } },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('sizes 16 16'); // both secrets were there, with their lengths
    expect(r.stderr).toContain('file=**** env=****');
    for (const blob of [r.stderr, r.stdout, await readFile(tarOut, 'latin1')]) {
      expect(blob).not.toContain('s3cr3t-from-file');
      expect(blob).not.toContain('env-s3cr3t-value');
    }
    const { stdout: listing } = await sh('tar', ['-tf', tarOut]);
    expect(listing.split('\n')).toContain('done');
    expect(listing).not.toMatch(/run\/secrets\/(file|env)/);
    // Layers are gzip: look inside them.
    const { stdout: ocilist } = await sh('sh', ['-c', `mkdir -p ${f.tmp}/oci-x && tar -xf ${ociOut} -C ${f.tmp}/oci-x && for b in ${f.tmp}/oci-x/blobs/sha256/*; do (zcat "$b" 2>/dev/null || cat "$b") ; done | strings`], { maxBuffer: 64 << 20 });
    expect(ocilist).not.toContain('s3cr3t-from-file');
    expect(ocilist).not.toContain('env-s3cr3t-value');
  });

  it('--network: none by default; host needs both --allow network.host and the operator', async () => {
    const nctx = await f.context('net', { Dockerfile: `FROM ${f.base}\nRUN cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' ' && echo\n` });
    const hostIfaces = (await readFile('/proc/net/dev', 'utf8')).split('\n').slice(2).map((l) => l.split(':')[0]!.trim()).filter((n) => n && n !== 'lo');
    const plain = await f.build(['--progress', 'plain', '--no-cache', nctx]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stderr).toMatch(/#\d+ lo \n/);
    const none = await f.build(['--progress', 'plain', '--network', 'none', '--no-cache', nctx]);
    expect(none.code).toBe(0);
    expect(none.stderr).toMatch(/#\d+ lo \n/);

    const noAllow = await f.build(['--progress', 'plain', '--network', 'host', nctx]);
    expect(noAllow.code).toBe(1);
    expect(noAllow.stderr).toMatch(/network\.host entitlement/);
    const noOperator = await f.build(['--progress', 'plain', '--network', 'host', '--allow', 'network.host', nctx]);
    expect(noOperator.code).toBe(1);
    expect(noOperator.stderr).toMatch(/not allowed on this machine.*--allow-host-network/);
    // The Dockerfile asking for host network is held to the same rule.
    const dctx = await f.context('net-df', { Dockerfile: `FROM ${f.base}\nRUN --network=host true\n` });
    const dfNoAllow = await f.build(['--progress', 'plain', '--allow-host-network', dctx]);
    expect(dfNoAllow.code).toBe(1);
    expect(dfNoAllow.stderr).toMatch(/network\.host entitlement/);

    const both = await f.build(['--progress', 'plain', '--network', 'host', '--allow', 'network.host', nctx], { env: { BUILDLITE_ALLOW_HOST_NETWORK: '1' } });
    expect(both.code, both.stderr).toBe(0);
    for (const i of hostIfaces) expect(both.stderr).toContain(i);
    const flag = await f.build(['--progress', 'plain', '--network', 'host', '--allow', 'network.host', '--allow-host-network', nctx]);
    expect(flag.code, flag.stderr).toBe(0);
  });

  it('CONTEXT - reads a tar (or a bare Dockerfile) from stdin and removes it afterwards', async () => {
    const sctx = await f.context('stdin', { Dockerfile: `FROM ${f.base}\nCOPY data.txt /data.txt\nRUN cat /data.txt\n`, 'data.txt': 'piped-in-data\n' });
    const tarFile = path.join(f.tmp, 'ctx.tar.gz');
    await sh('tar', ['-czf', tarFile, '-C', sctx, '.']);
    const tarBytes = await readFile(tarFile);
    const out = path.join(f.tmp, 'stdin-out');
    const r = await new Promise<{ code: number; stderr: string }>((resolve, reject) => {
      // Binary stdin: runCli takes text, so spawn directly.
      import('node:child_process').then(({ spawn }) => {
        import('../helpers/cli.js').then(({ CLI }) => {
          const c = spawn(process.execPath, [CLI, 'build', '--root', f.root, '--progress', 'plain', '-o', `type=local,dest=${out}`, '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
          let stderr = '';
          c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          c.on('error', reject);
          c.on('close', (code) => resolve({ code: code ?? -1, stderr }));
          c.stdin.end(tarBytes);
        }, reject);
      }, reject);
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('piped-in-data');
    expect(await readFile(path.join(out, 'data.txt'), 'utf8')).toBe('piped-in-data\n');
    expect((await readdir(path.join(f.root, 'tmp'))).filter((n) => n.startsWith('stdin-context-'))).toEqual([]);

    const df = await f.build(['--progress', 'plain', '-'], { input: `FROM ${f.base}\nRUN echo from-a-piped-dockerfile\n` });
    expect(df.code, df.stderr).toBe(0);
    expect(df.stderr).toContain('from-a-piped-dockerfile');
    const empty = await f.build(['-'], { input: '' });
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/stdin is empty/);
  });

  it('buildlite push sends a locally tagged image', async () => {
    const ref = `${f.registry.host}/cli/local:tagged`;
    const iid = path.join(f.tmp, 'iid-local');
    const r = await f.build([...common(), '-t', ref, '--iidfile', iid, ctx]);
    expect(r.code, r.stderr).toBe(0);
    await expect(sh('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`])).rejects.toThrow();
    const p = await f.cli(['push', '--root', f.root, ref]);
    expect(p.code, p.stderr).toBe(0);
    const digest = (await readFile(iid, 'utf8')).trim();
    expect(p.stdout.trim()).toBe(`${ref}@${digest}`);
    const img = await inspectRemote(ref);
    expect(img.manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    const other = await f.cli(['push', '--root', f.root, `${f.registry.host}/cli/never-built:x`]);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/no local image named/);
  });
});
