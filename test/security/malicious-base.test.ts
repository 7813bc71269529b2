import { randomBytes } from 'node:crypto';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import tarStream from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../core/digest.js';
import { mountsUnder } from '../../core/mounter.js';
import { MediaType, type ImageConfig } from '../../core/oci.js';
import { LocalContentStore, writeBlob } from '../../cache/index.js';
import { parseReference, RegistryClient } from '../../registry-client/index.js';
import { SecurityEnv } from './harness.js';

interface Item {
  readonly header: Partial<tarStream.Header> & { name: string };
  readonly body?: string;
}

async function tarOf(items: readonly Item[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const it of items) {
    await new Promise<void>((resolve, reject) =>
      pack.entry({ mode: 0o644, mtime: new Date(0), ...it.header }, it.body ?? '', (err) => (err ? reject(err) : resolve())),
    );
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/**
 * Push `busybox + one crafted layer` as a new tag of the base's repository,
 * with our registry client, straight into the test registry.
 */
async function pushEvilImage(env: SecurityEnv, tag: string, items: readonly Item[], extraConfig: Partial<ImageConfig> = {}): Promise<string> {
  const client = new RegistryClient({});
  const storeDir = path.join(env.tmp, `evil-store-${tag}`);
  try {
    const base = await client.resolve(env.base);
    const tarBytes = await tarOf(items);
    const diffId = sha256(tarBytes);
    const store = new LocalContentStore(storeDir);
    const layer = await writeBlob(store, gzipSync(tarBytes));
    const config: ImageConfig = {
      ...base.config,
      rootfs: { type: 'layers', diff_ids: [...base.config.rootfs.diff_ids, diffId] },
      history: [...(base.config.history ?? []), { created_by: `crafted: ${tag}` }],
      ...extraConfig,
    };
    const cfg = await writeBlob(store, Buffer.from(JSON.stringify(config)));
    const layers = [...base.manifest.layers, { mediaType: MediaType.OciLayerGzip, digest: layer.digest, size: layer.size }];
    const manifest = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: cfg.digest, size: cfg.size }, layers }),
    );
    const ref = `${env.registry.host}/library/busybox:${tag}`;
    await client.pushImage(parseReference(ref), {
      manifest,
      mediaType: MediaType.OciManifest,
      blobs: [{ mediaType: MediaType.OciConfig, digest: cfg.digest, size: cfg.size }, ...layers],
    }, store);
    return ref;
  } finally {
    await client.close();
    await rm(storeDir, { recursive: true, force: true });
  }
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(() => true, () => false);
}

/** docs/security.md T3 and T8: layer tars of a base image are untrusted; applying them must stay inside the snapshot. */
describe('a hostile base image cannot reach the host', () => {
  let env: SecurityEnv;
  const token = randomBytes(6).toString('hex');
  // Host paths a naive extractor would write; all must stay absent.
  const hostTargets = {
    dotdot: `/tmp/bl-dotdot-${token}`,
    abs: `/tmp/bl-abs-${token}`,
    viaAbsLink: `/tmp/bl-vialink-${token}`,
    viaRelLink: `/tmp/bl-viarel-${token}`,
  };
  let victim: string;
  const victimText = `host victim ${token}`;

  beforeAll(async () => {
    env = await SecurityEnv.start();
    victim = path.join(env.tmp, 'victim.txt');
    await writeFile(victim, victimText);
  });
  afterAll(async () => {
    for (const p of Object.values(hostTargets)) await rm(p, { force: true, recursive: true });
    await env?.stop();
  });

  const cases: [string, (victimPath: string) => Item[]][] = [
    ['../ names', () => [{ header: { name: `../../../../../../../../..${hostTargets.dotdot}` }, body: 'dotdot' }]],
    ['absolute names', () => [{ header: { name: hostTargets.abs }, body: 'abs' }]],
    [
      'a symlink to an absolute dir, then a write through it',
      () => [
        { header: { name: 'hostdir', type: 'symlink', linkname: '/tmp' } },
        { header: { name: `hostdir/${path.basename(hostTargets.viaAbsLink)}` }, body: 'via absolute link' },
      ],
    ],
    [
      'a symlink climbing out with .., then a write through it',
      () => [
        { header: { name: 'up', type: 'symlink', linkname: '../../../../../../../../../tmp' } },
        { header: { name: `up/${path.basename(hostTargets.viaRelLink)}` }, body: 'via relative link' },
      ],
    ],
    [
      'a symlink to a host file, then a file written over the link',
      (v) => [
        { header: { name: 'victim-link', type: 'symlink', linkname: v } },
        { header: { name: 'victim-link' }, body: 'overwritten through the link' },
      ],
    ],
    ['a hardlink to a host file', (v) => [{ header: { name: 'hl', type: 'link', linkname: v } }]],
    ['a hardlink climbing out with ..', (v) => [{ header: { name: 'hl2', type: 'link', linkname: `../../../../../../../../..${v}` } }]],
  ];

  it.each(cases)('%s: refused or contained, and the host is untouched', async (name, items) => {
    const tag = `evil-${cases.findIndex((c) => c[0] === name)}`;
    const ref = await pushEvilImage(env, tag, items(victim));
    const { builder, root } = await env.builder();
    // The step tries to use what the layer planted: read and overwrite the victim through every name.
    const out = await env.build(
      builder,
      `FROM ${ref}\nRUN for f in /hl /hl2 /victim-link /hostdir/* /up/*; do [ -e "$f" ] && cat "$f"; done; echo pwned > /hl; echo pwned > /victim-link; echo step-done\n`,
    );
    if (out.error) {
      // Refused, in words people search for, at the FROM line, naming the image and the layer.
      expect(out.error.code).toBe('UNSAFE_PATH');
      expect(out.error.message).toMatch(/path traversal/);
      // The image as pinned (the FROM line, which the range points at, shows the tag).
      expect(out.error.message).toMatch(new RegExp(`^base image ${env.registry.host}/library/busybox@sha256:[a-f0-9]{64}: `));
      expect(out.error.message).toMatch(/layer sha256:[a-f0-9]{64}: /);
      expect(out.error.range?.startLine).toBe(1);
      if (name.startsWith('a hardlink')) expect(out.error.message).toMatch(/hardlink "hl2?" → target/);
    } else {
      // Contained: the layer applied inside the rootfs, where the step sees what it wrote.
      expect(out.logs).toContain('step-done');
      const body = items(victim).find((i) => i.body !== undefined)?.body;
      if (body) expect(out.logs).toContain(body);
    }
    expect(out.logs).not.toContain(victimText);
    expect(await readFile(victim, 'utf8')).toBe(victimText);
    for (const p of Object.values(hostTargets)) expect(await exists(p), p).toBe(false);
    expect(await mountsUnder(root)).toEqual([]);
    expect(await env.runcContainers(root)).toBe('');
  });
});

describe('oversized image documents', () => {
  let env: SecurityEnv;
  beforeAll(async () => {
    env = await SecurityEnv.start();
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('an image config of 5 MiB is refused before it is read, at the FROM line, naming the limit', async () => {
    const ref = await pushEvilImage(env, 'fat-config', [{ header: { name: 'ok.txt' }, body: 'ok' }], {
      config: { Labels: { padding: 'x'.repeat(5 << 20) } },
    });
    const { builder, root } = await env.builder();
    try {
      const out = await env.build(builder, `FROM ${ref}\nRUN echo never-ran\n`);
      expect(out.error?.code).toBe('LIMIT_EXCEEDED');
      expect(out.error?.message).toMatch(/image config sha256:[a-f0-9]{64} is 5\.0 MiB: over the 4 MiB limit on image configs/);
      expect(out.error?.range?.startLine).toBe(1);
      expect(out.logs).not.toContain('never-ran');
      expect(await env.runcContainers(root)).toBe('');
    } finally {
      await builder.close();
    }
  });
});
