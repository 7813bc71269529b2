/**
 * Operator limits on whole builds through Builder, with real runc, cgroups
 * and a registry: each limit a build passes fails it with LIMIT_EXCEEDED
 * naming the limit (details.limit and value) at the line it belongs to, and
 * leaves nothing half-written: no mount, container, active snapshot, ingest
 * or scratch directory.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../core/digest.js';
import { mountsUnder } from '../../core/mounter.js';
import { Builder } from '../../builder/index.js';
import { OverlaySnapshotter } from '../../builder/snapshot/index.js';
import { RegistryClient } from '../../registry-client/index.js';
import { makeBusyboxRootfs } from '../helpers/busybox-rootfs.js';
import { pushImageOf } from '../helpers/base-image.js';
import { SecurityEnv } from './harness.js';

const sh = promisify(execFile);
const MiB = 1024 * 1024;

/** Bytes under a directory, as `du -sbx` counts them (not through the overlay mounts of running steps, which would count their lower layers again). */
async function du(dir: string): Promise<number> {
  const { stdout } = await sh('du', ['-sbx', dir]);
  return Number(stdout.split('\t')[0]);
}

/** What a build may leave only when it succeeded: none of it after a limit hit. */
async function expectNothingHalfWritten(env: SecurityEnv, root: string): Promise<void> {
  expect(await mountsUnder(root)).toEqual([]);
  expect(await env.runcContainers(root)).toBe('');
  expect(await readdir(path.join(root, 'content', 'ingest')).catch(() => [])).toEqual([]);
  const active: string[] = [];
  for await (const s of new OverlaySnapshotter(path.join(root, 'snapshots')).list()) if (s.kind === 'active') active.push(s.name);
  expect(active).toEqual([]);
  expect((await readdir(path.join(root, 'tmp'))).filter((n) => /^(m|mnt|http|rw)-/.test(n))).toEqual([]);
}

describe('operator limits on builds (real runc, registry, cgroups)', () => {
  let env: SecurityEnv;
  const builders: Builder[] = [];
  async function open(limits: NonNullable<Parameters<typeof Builder.open>[0]['limits']>) {
    const b = await env.builder({ limits });
    builders.push(b.builder);
    return b;
  }

  beforeAll(async () => {
    env = await SecurityEnv.start();
  });
  afterAll(async () => {
    for (const b of builders) await b.close().catch(() => undefined);
    await env?.stop();
  });

  it('a memory bomb under a 256 MiB limit fails with the OOM message at its RUN line; the builder runs the next build', async () => {
    const { builder, root } = await open({ memoryBytes: 256 * MiB });
    const out = await env.build(builder, `FROM ${env.base}\nRUN echo start; awk 'BEGIN { s = "xxxxxxxxxxxxxxxx"; while (1) s = s s }'\n`);
    expect(out.error).toMatchObject({
      code: 'LIMIT_EXCEEDED',
      message: 'RUN exceeded the memory limit of 256 MiB (OOM-killed)',
      range: { startLine: 2 },
      details: { limit: 'memoryBytes', value: 256 * MiB, oomKilled: true },
    });
    expect(out.logs).toContain('start');
    await expectNothingHalfWritten(env, root);
    const next = await env.build(builder, `FROM ${env.base}\nRUN echo alive\n`);
    expect(next.error).toBeUndefined();
  });

  it("what a request asks is cut to the builder's limits: lower is kept, higher is cut", async () => {
    const { builder } = await open({ memoryBytes: 512 * MiB, pids: 32 });
    const bomb = `FROM ${env.base}\nRUN awk 'BEGIN { s = "xxxxxxxxxxxxxxxx"; while (1) s = s s }'\n`;
    const lower = await env.build(builder, bomb, { request: { limits: { memoryBytes: 256 * MiB } } });
    expect(lower.error).toMatchObject({ code: 'LIMIT_EXCEEDED', details: { limit: 'memoryBytes', value: 256 * MiB } });
    const forks = `FROM ${env.base}\nRUN i=0; while [ $i -lt 100 ]; do sleep 5 & i=$((i+1)); done; wait\n`;
    const higher = await env.build(builder, forks, { request: { limits: { pids: 10_000 } } });
    expect(higher.error).toMatchObject({ code: 'LIMIT_EXCEEDED', details: { limit: 'pids', value: 32 } });
    const bad = await env.build(builder, `FROM ${env.base}\n`, { request: { limits: { memoryBytes: -1 } } });
    expect(bad.error).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(bad.error?.message).toMatch(/memory/);
  });

  it('a whole-build timeout ends a multi-step build: every step killed, the limit named, nothing half-written', async () => {
    const { builder, root } = await open({ buildTimeoutMs: 4000 });
    const t0 = Date.now();
    const out = await env.build(builder, `FROM ${env.base}\nRUN echo one\nRUN sleep 1\nRUN echo two; sleep 617 & sleep 617\nRUN echo never\n`);
    expect(out.error).toMatchObject({
      code: 'LIMIT_EXCEEDED',
      message: 'the build exceeded the build timeout of 4s (its running steps were stopped)',
      details: { limit: 'buildTimeoutMs', value: 4000 },
    });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(4000);
    expect(out.logs).toContain('two');
    expect(out.logs).not.toContain('never');
    const states = out.events.flatMap((e) => (e.type === 'vertex' && e.name.includes('sleep 617') ? [e.state] : []));
    expect(states).toEqual(['started', 'cancelled']);
    const { stdout } = await sh('ps', ['-eo', 'args']);
    expect(stdout.split('\n').filter((l) => l.trim() === 'sleep 617')).toEqual([]);
    await expectNothingHalfWritten(env, root);
  });

  it('a base image whose layer unpacks past the layer limit is refused at FROM, naming image and layer; the state dir never grows much past the limit', async () => {
    const layers: Array<{ digest: Digest; size: number }> = [];
    // 64 MiB of zeros: a tiny blob that unpacks far past the 16 MiB limit.
    await pushImageOf(env.registry.host, 'limits/big:1', [makeBusyboxRootfs, (d) => sh('sh', ['-c', 'head -c 67108864 /dev/zero > "$1"/zeros', 'sh', d]).then(() => undefined)], { layers });
    const big = layers[1]!;
    const { builder, root } = await open({ maxLayerUnpackedBytes: 16 * MiB });
    const before = await du(root);
    let peak = 0;
    let building = true;
    const watch = (async () => {
      while (building) {
        peak = Math.max(peak, await du(root).catch(() => 0));
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    const out = await env.build(builder, `FROM ${env.registry.host}/limits/big:1\nRUN echo never\n`);
    building = false;
    await watch;
    expect(out.error).toMatchObject({
      code: 'LIMIT_EXCEEDED',
      range: { startLine: 1 },
      details: { limit: 'maxLayerUnpackedBytes', value: 16 * MiB, layer: big.digest },
    });
    expect(out.error?.message).toMatch(new RegExp(`^base image ${env.registry.host}/limits/big@sha256:[0-9a-f]{64}: layer ${big.digest}: unpacking exceeded the unpacked layer size limit of 16 MiB$`));
    expect(String(out.error?.details?.['image'])).toContain('/limits/big@sha256:');
    expect(out.logs).not.toContain('never');
    // What stays: the blobs and the busybox snapshot; at the peak, at most the limit on top (and a margin for metadata).
    const after = await du(root);
    expect(after - before).toBeLessThan(16 * MiB);
    expect(peak - before).toBeLessThan(16 * MiB + 8 * MiB);
    await expectNothingHalfWritten(env, root);
  });

  it('a base layer over the compressed layer limit is refused before it is pulled: no byte of it stored', async () => {
    const layers: Array<{ digest: Digest; size: number }> = [];
    await pushImageOf(env.registry.host, 'limits/random:1', [makeBusyboxRootfs, (d) => writeFile(path.join(d, 'noise'), randomBytes(3 * MiB))], { layers });
    const noisy = layers[1]!;
    const { builder, root } = await open({ maxLayerBytes: 2 * MiB });
    const out = await env.build(builder, `FROM ${env.registry.host}/limits/random:1\nRUN echo never\n`);
    expect(out.error).toMatchObject({ code: 'LIMIT_EXCEEDED', range: { startLine: 1 }, details: { limit: 'maxLayerBytes', value: 2 * MiB, layer: noisy.digest } });
    expect(out.error?.message).toMatch(/^base image \S+\/limits\/random@sha256:[0-9a-f]{64}: layer sha256:[0-9a-f]{64} \(3\.0 MiB compressed\) exceeded the layer size limit of 2 MiB \(refused before pulling\)$/);
    expect(existsSync(path.join(root, 'content', 'blobs', 'sha256', noisy.digest.slice(7)))).toBe(false);
    expect(existsSync(path.join(root, 'content', 'blobs', 'sha256', layers[0]!.digest.slice(7)))).toBe(false);
    await expectNothingHalfWritten(env, root);

    const whole = await open({ maxImageBytes: 2 * MiB });
    const img = await env.build(whole.builder, `FROM ${env.registry.host}/limits/random:1\n`);
    expect(img.error).toMatchObject({ code: 'LIMIT_EXCEEDED', range: { startLine: 1 }, details: { limit: 'maxImageBytes', value: 2 * MiB } });
    expect(img.error?.message).toMatch(/^base image \S+ \(\d\.\d MiB compressed\) exceeded the image size limit of 2 MiB \(refused before pulling\)$/);
  });

  it("a step whose layer passes a size limit fails at that step, and its layer is never stored", async () => {
    const unpacked = await open({ maxLayerUnpackedBytes: 8 * MiB });
    const blobsBefore = async (root: string) => (await readdir(path.join(root, 'content', 'blobs', 'sha256'))).length;
    const out = await env.build(unpacked.builder, `FROM ${env.base}\nRUN echo small > /a\nRUN head -c 20971520 /dev/zero > /big\nRUN echo never\n`);
    expect(out.error).toMatchObject({
      code: 'LIMIT_EXCEEDED',
      message: "this step's layer exceeded the unpacked layer size limit of 8 MiB",
      range: { startLine: 3 },
      details: { limit: 'maxLayerUnpackedBytes', value: 8 * MiB },
    });
    // The base (manifest, config, layer) and the first step's layer; none of the failed step's.
    const n = await blobsBefore(unpacked.root);
    expect(n).toBe(4);
    await expectNothingHalfWritten(env, unpacked.root);

    const base = await new RegistryClient({}).resolve(env.base);
    const baseSize = base.manifest.layers.reduce((s, l) => s + l.size, 0);
    const image = await open({ maxImageBytes: baseSize + MiB });
    const img = await env.build(image.builder, `FROM ${env.base}\nRUN head -c 524288 /dev/urandom > /a\nRUN head -c 1048576 /dev/urandom > /b\n`);
    expect(img.error).toMatchObject({ code: 'LIMIT_EXCEEDED', range: { startLine: 3 }, details: { limit: 'maxImageBytes' } });
    expect(img.error?.message).toMatch(/^the image with this step exceeded the image size limit of \d+\.\d MiB \(compressed; the layers below are /);
    await expectNothingHalfWritten(env, image.root);
  });

  it('a build that writes past the build disk limit fails at the step that passed it, and what it half-wrote is gone', async () => {
    const { builder, root } = await open({ maxBuildDiskBytes: 12 * MiB });
    const out = await env.build(builder, `FROM ${env.base}\nRUN head -c 16777216 /dev/zero > /big\n`);
    expect(out.error).toMatchObject({ code: 'LIMIT_EXCEEDED', range: { startLine: 2 }, details: { limit: 'maxBuildDiskBytes', value: 12 * MiB } });
    expect(out.error?.message).toMatch(/^this step's snapshot exceeded the build disk limit of 12 MiB: this build has written 12\.\d MiB to the state directory$/);
    await expectNothingHalfWritten(env, root);
    // Another build starts its own count: a small one fits.
    const ok = await env.build(builder, `FROM ${env.base}\nRUN echo fits > /f\n`);
    expect(ok.error).toBeUndefined();
  });

  it('a step log past the step log limit keeps its first and last parts and says, in the file and the events, that bytes were dropped', async () => {
    const { builder, root } = await open({ maxStepLogBytes: 64 * 1024 });
    const out = await env.build(builder, `FROM ${env.base}\nRUN echo HEAD-MARK; i=0; while [ $i -lt 20000 ]; do echo "line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"; i=$((i+1)); done; echo TAIL-MARK\n`);
    expect(out.error).toBeUndefined();
    expect(out.logs).toContain('[the full log of this step passed the step log limit of 64 KiB: it keeps the first and last parts, and says where bytes were dropped]');
    const logsDir = path.join(root, 'logs');
    const [buildDir] = await readdir(logsDir);
    const files = await readdir(path.join(logsDir, buildDir!));
    expect(files.filter((f) => f.includes('.tail-'))).toEqual([]);
    const logFile = files.find((f) => f.endsWith('.log'))!;
    const text = await readFile(path.join(logsDir, buildDir!, logFile), 'utf8');
    expect(text.startsWith('HEAD-MARK\n')).toBe(true);
    expect(text.endsWith('TAIL-MARK\n')).toBe(true);
    expect(text).toMatch(/\n\[\.\.\. \d+ bytes dropped here: this step printed more than the step log limit of 64 KiB; its first and last parts are kept \.\.\.\]\n/);
    expect((await stat(path.join(logsDir, buildDir!, logFile))).size).toBeLessThanOrEqual(64 * 1024 + 200);
  });

  it('a Dockerfile over the Dockerfile size limit is refused before anything runs', async () => {
    const { builder, root } = await open({ maxDockerfileBytes: 1024 });
    const out = await env.build(builder, `# ${'x'.repeat(2048)}\nFROM ${env.base}\nRUN echo never\n`);
    expect(out.error).toMatchObject({ code: 'LIMIT_EXCEEDED', message: 'Dockerfile (2.1 KiB) exceeded the Dockerfile size limit of 1 KiB', details: { limit: 'maxDockerfileBytes', value: 1024 } });
    expect(await readdir(path.join(root, 'content', 'blobs', 'sha256')).catch(() => [])).toEqual([]);
  });

  it('limits with bad values are refused when the builder opens, naming the limit', async () => {
    await expect(Builder.open({ root: path.join(env.tmp, 'bad-limits'), limits: { pids: 0 } })).rejects.toMatchObject({ code: 'INVALID_OPTION', message: expect.stringMatching(/limits\.pids \(pids\)/) });
    await expect(Builder.open({ root: path.join(env.tmp, 'bad-limits'), limits: { memoryBytes: 1024 } })).rejects.toMatchObject({ code: 'INVALID_OPTION', message: expect.stringMatching(/memoryBytes.*4 MiB/) });
  });
});
