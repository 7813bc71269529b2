import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDigest } from '../../core/digest.js';
import type { ImageConfig, ImageManifest } from '../../core/oci.js';
import { readJson } from '../../cache/index.js';
import { drive, writeTree } from '../helpers/build-driver.js';
import { startBuilderEnv, type BuilderEnv } from '../helpers/builder-env.js';

/**
 * COPY --link: the copy is made on an empty filesystem, so its layer and its
 * key do not depend on the base. A new base under the same tag reruns the
 * steps that read the filesystem, and re-stacks the linked layer as it was.
 */
describe('COPY --link across a base change', () => {
  let env: BuilderEnv;
  let baseRef: string;

  beforeAll(async () => {
    env = await startBuilderEnv('link');
    baseRef = `${env.registry.host}/lib/base:latest`;
  });

  afterAll(async () => {
    await env?.stop();
  });

  /** Pushes a new base image as `lib/base:latest`: busybox plus one file saying which one it is. */
  async function pushBase(version: string): Promise<void> {
    const ctx = path.join(env.tmp, `base-${version}`);
    await writeTree(ctx, { Dockerfile: `FROM ${env.base}\nRUN echo ${version} > /base-version\n` });
    const out = await drive(env.builder, { dockerfile: await readFile(path.join(ctx, 'Dockerfile'), 'utf8'), context: { dir: ctx }, outputs: [{ type: 'registry', refs: [baseRef] }] });
    expect(out.error).toBeUndefined();
  }

  async function image(digest: string): Promise<{ manifest: ImageManifest; config: ImageConfig }> {
    const manifest = await readJson<ImageManifest>(env.builder.store, parseDigest(digest), 1 << 20);
    const config = await readJson<ImageConfig>(env.builder.store, parseDigest(manifest.config.digest), 1 << 20);
    return { manifest, config };
  }

  it('keeps the linked layer blob, reruns the steps above it, and the image says so', async () => {
    const ctx = path.join(env.tmp, 'app');
    await writeTree(ctx, {
      'app.txt': 'the app\n',
      Dockerfile: [
        `FROM ${baseRef}`,
        'RUN cat /base-version > /seen-base',
        'COPY --link app.txt /opt/app/app.txt',
        // Reads the linked file and the base's together: the stack must be materialised in order.
        'RUN cat /opt/app/app.txt /base-version > /combined',
        '',
      ].join('\n'),
    });
    const build = async (dest: string) => {
      const out = await drive(env.builder, { dockerfile: await readFile(path.join(ctx, 'Dockerfile'), 'utf8'), context: { dir: ctx }, outputs: [{ type: 'local', dest }] });
      expect(out.error).toBeUndefined();
      return out;
    };

    await pushBase('v1');
    const first = await build(path.join(env.tmp, 'out-1'));
    const one = await image(first.result!.imageDigest);

    await pushBase('v2');
    const second = await build(path.join(env.tmp, 'out-2'));
    const two = await image(second.result!.imageDigest);

    // The copy ran once: the second build found it in the cache although everything below it changed.
    expect(first.ran.filter((n) => /\] COPY --link/.test(n))).toHaveLength(1);
    expect(second.ran.filter((n) => /\] COPY --link/.test(n))).toEqual([]);
    expect(second.cached.filter((n) => /\] COPY --link/.test(n))).toHaveLength(1);
    // What reads the filesystem reran on the new base; the link itself was stacked again.
    for (const step of [/RUN cat \/base-version > \/seen-base/, /RUN cat \/opt\/app\/app.txt/, /LINK COPY --link/]) {
      expect(second.ran.some((n) => step.test(n)), String(step)).toBe(true);
    }

    // busybox, the base's RUN, the stage's RUN, the linked copy, the last RUN.
    expect(one.manifest.layers).toHaveLength(5);
    expect(two.manifest.layers).toHaveLength(5);
    expect(two.manifest.layers[3]).toEqual(one.manifest.layers[3]);
    expect(two.config.rootfs.diff_ids[3]).toBe(one.config.rootfs.diff_ids[3]);
    for (const i of [1, 2, 4]) expect(two.manifest.layers[i]?.digest).not.toBe(one.manifest.layers[i]?.digest);

    // History names one layer per non-empty entry, the linked copy's at its place.
    for (const img of [one, two]) {
      const layered = (img.config.history ?? []).filter((h) => !h.empty_layer);
      expect(layered).toHaveLength(5);
      expect(layered[3]?.created_by).toBe('COPY app.txt /opt/app/app.txt # buildkit');
    }
    expect(await readFile(path.join(env.tmp, 'out-1/combined'), 'utf8')).toBe('the app\nv1\n');
    expect(await readFile(path.join(env.tmp, 'out-2/combined'), 'utf8')).toBe('the app\nv2\n');
    expect(await readFile(path.join(env.tmp, 'out-2/opt/app/app.txt'), 'utf8')).toBe('the app\n');
  });
});
