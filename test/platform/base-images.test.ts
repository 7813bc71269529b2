/**
 * FROM under a target platform, against a real registry: the manifest of a
 * base's index is picked by os/architecture/variant (arm64 serves an entry
 * that says arm64/v8), and a base without the platform is a clear error,
 * before any step runs, naming the platforms it has.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NoMatchingPlatformError } from '../../core/platform.js';
import { RegistryClient } from '../../registry-client/index.js';
import { inspectRemote, startCliFixture, type CliFixture } from '../cli/fixture.js';
import { pushMultiArchBusybox, type MultiArchBase } from '../helpers/multi-arch-base.js';

describe('base images under a target platform', () => {
  let f: CliFixture;
  let multi: MultiArchBase;
  let client: RegistryClient;

  beforeAll(async () => {
    f = await startCliFixture('platform-base');
    multi = await pushMultiArchBusybox(f.registry.host);
    client = new RegistryClient({});
  });
  afterAll(async () => {
    await client?.close();
    await f?.close();
  });

  it.each([
    ['linux/amd64', { os: 'linux', architecture: 'amd64' }, 'amd64'],
    ['linux/arm64', { os: 'linux', architecture: 'arm64' }, 'arm64'],
    ['linux/arm64/v8', { os: 'linux', architecture: 'arm64', variant: 'v8' }, 'arm64'],
    ['linux/aarch64', { os: 'linux', architecture: 'aarch64' }, 'arm64'],
  ] as const)('%s picks the %s manifest of the index', async (_name, platform, which) => {
    const r = await client.resolve(multi.ref, platform);
    expect(r.manifestDigest).toBe(multi[which]);
    expect(r.index?.digest).toBe(multi.index);
  });

  it('a platform the index lacks is a NoMatchingPlatformError naming the ones it has', async () => {
    const err = await client.resolve(multi.ref, { os: 'linux', architecture: 'arm', variant: 'v7' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoMatchingPlatformError);
    expect((err as NoMatchingPlatformError).code).toBe('NOT_FOUND');
    expect((err as Error).message).toBe(`${multi.ref} has no image for platform linux/arm/v7 (its platforms: linux/amd64, linux/arm64)`);
  });

  it('a single-platform base serves only its platform', async () => {
    await expect(client.resolve(f.base, { os: 'linux', architecture: 'amd64' })).resolves.toBeDefined();
    await expect(client.resolve(f.base, { os: 'linux', architecture: 'arm64' })).rejects.toThrow(/has no image for platform linux\/arm64 \(its platforms: linux\/amd64\)/);
  });

  it('build --platform linux/arm64 builds on the arm64 base and says arm64 in the config', async () => {
    const ctx = await f.context('arm64-copy', { 'a.txt': 'hello\n', Dockerfile: `FROM ${multi.ref}\nCOPY a.txt /a.txt\n` });
    const ref = `${f.registry.host}/platform/copy:arm64`;
    const r = await f.build(['--progress', 'plain', '--platform', 'linux/arm64', '-t', ref, '--push', ctx]);
    expect(r.code, r.stderr).toBe(0);
    const img = await inspectRemote(ref);
    const config = img.config as unknown as { architecture: string; os: string; variant?: string };
    expect(config).toMatchObject({ architecture: 'arm64', os: 'linux' });
    expect(config.variant).toBeUndefined();
    const base = JSON.parse((await client.fetchManifest(`${f.registry.host}/library/busybox-multi@${multi.arm64}`)).bytes.toString()) as { layers: { digest: string }[] };
    expect(img.manifest.layers[0]?.digest).toBe(base.layers[0]?.digest);
  });

  it('a base without an arm64 manifest fails the build at its FROM line, before any step runs', async () => {
    const ctx = await f.context('no-arm64', { Dockerfile: `FROM ${f.base} AS one\nRUN echo ran-$((40+1))\nFROM ${f.base}\nRUN echo ran-$((40+2))\n` });
    const r = await f.build(['--progress', 'plain', '--platform', 'linux/arm64', ctx]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${f.base} has no image for platform linux/arm64 (its platforms: linux/amd64)`);
    // The target stage's FROM (stage one is not needed by the target, so not resolved).
    expect(r.stderr).toMatch(/Dockerfile:3\n[\s\S]*3 \| >>> FROM/);
    // The excerpt shows the RUN lines; their output would say ran-41 and ran-42.
    expect(r.stderr + r.stdout).not.toMatch(/ran-4[12]/);
  });
});
