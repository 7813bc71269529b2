import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { createGunzip } from 'node:zlib';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import type { BuildEvent, BuildRequest, BuildResult } from '../../core/build.js';
import type { WireError } from '../../core/errors.js';
import { mountsUnder } from '../../core/mounter.js';
import type { ImageManifest } from '../../core/oci.js';
import { Builder, type BuilderOptions } from '../../builder/index.js';
import { RegistryClient } from '../../registry-client/index.js';
import { pushBusyboxBase } from '../helpers/base-image.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

export const sh = promisify(execFile);

export interface BuildOutcome {
  readonly events: BuildEvent[];
  readonly result?: BuildResult;
  readonly error?: WireError;
  /** stdout+stderr of every RUN, in order. */
  readonly logs: string;
}

/**
 * One registry with the busybox base, and a temp dir under which every
 * builder root and context lives, so teardown can check and clean one tree.
 */
export class SecurityEnv {
  private constructor(
    readonly registry: TestRegistry,
    readonly tmp: string,
  ) {}
  private n = 0;

  static async start(): Promise<SecurityEnv> {
    const registry = await startRegistry();
    try {
      await pushBusyboxBase(registry.host);
      return new SecurityEnv(registry, await mkdtemp(path.join(os.tmpdir(), 'bl-sec-')));
    } catch (err) {
      await registry.stop();
      throw err;
    }
  }

  get base(): string {
    return `${this.registry.host}/library/busybox:latest`;
  }

  /** A builder with its own state root. */
  async builder(opts: Omit<BuilderOptions, 'root'> = {}): Promise<{ builder: Builder; root: string }> {
    const root = path.join(this.tmp, `root-${++this.n}`);
    const builder = await Builder.open({ root, insecureRegistries: [this.registry.host], ...opts });
    return { builder, root };
  }

  /** A context directory with these files (relative name → content). */
  async context(files: Record<string, string> = {}): Promise<string> {
    const dir = path.join(this.tmp, `ctx-${++this.n}`);
    await mkdir(dir, { recursive: true });
    for (const [name, text] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
      await writeFile(path.join(dir, name), text);
    }
    return dir;
  }

  async build(
    builder: Builder,
    dockerfile: string,
    opts: { context?: string; request?: Partial<BuildRequest>; secrets?: Map<string, Buffer>; ssh?: Map<string, string>; signal?: AbortSignal; debugCache?: boolean } = {},
  ): Promise<BuildOutcome> {
    const req: BuildRequest = { dockerfile, context: { dir: opts.context ?? (await this.context()) }, noCache: true, ...opts.request };
    const events: BuildEvent[] = [];
    for await (const e of builder.build(req, {
      ...(opts.secrets ? { secrets: opts.secrets } : {}),
      ...(opts.ssh ? { ssh: opts.ssh } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.debugCache ? { debugCache: true } : {}),
    })) {
      events.push(e);
    }
    const last = events.at(-1);
    const logs = events.flatMap((e) => (e.type === 'log' ? [e.data] : [])).join('');
    return {
      events,
      logs,
      ...(last?.type === 'result' ? { result: last.result } : {}),
      ...(last?.type === 'error' ? { error: last.error } : {}),
    };
  }

  /** runc containers still known under a builder root. */
  async runcContainers(root: string): Promise<string> {
    const { stdout } = await sh('runc', ['--root', path.join(root, 'exec', 'runc'), 'list', '-q']).catch(() => ({ stdout: '' }));
    return stdout.trim();
  }

  async stop(): Promise<void> {
    await this.registry.stop();
    for (const m of (await mountsUnder(this.tmp)).reverse()) await sh('umount', ['-l', m]).catch(() => undefined);
    await rm(this.tmp, { recursive: true, force: true });
  }
}

/** Did any RUN step get as far as a container: output, or a completed RUN. */
export function ranSomething(out: BuildOutcome): boolean {
  return out.logs.length > 0 || out.events.some((e) => e.type === 'vertex' && e.state === 'completed' && /RUN/.test(e.name));
}

/** T2: a build refused for a grant, before any step ran, leaving no mount or container under its root. */
export async function expectRefusedBeforeAnyStep(env: SecurityEnv, root: string, out: BuildOutcome, why: RegExp): Promise<void> {
  expect(out.error?.code).toBe('PERMISSION_DENIED');
  expect(out.error?.message).toMatch(why);
  expect(ranSomething(out)).toBe(false);
  expect(await mountsUnder(root)).toEqual([]);
  expect(await env.runcContainers(root)).toBe('');
}

export interface PulledImage {
  readonly manifest: ImageManifest;
  readonly configBytes: Buffer;
  readonly manifestBytes: Buffer;
  /** Each layer's entries, in order: name, type, link target, and content bytes for files. */
  readonly layers: { name: string; type: string; linkname?: string; data: Buffer }[][];
}

/** Pull an image straight from the registry, with our client, and read every layer. */
export async function readPushedImage(ref: string): Promise<PulledImage> {
  const client = new RegistryClient({});
  try {
    const img = await client.resolve(ref);
    const layers: PulledImage['layers'] = [];
    for (const desc of img.manifest.layers) {
      const blob = await client.fetchBlob(img.ref, desc);
      layers.push(await readTar(desc.mediaType.endsWith('gzip') ? blob.pipe(createGunzip()) : blob));
    }
    return { manifest: img.manifest, configBytes: img.configBytes, manifestBytes: img.manifestBytes, layers };
  } finally {
    await client.close();
  }
}

export async function readTar(stream: Readable): Promise<PulledImage['layers'][number]> {
  const out: PulledImage['layers'][number] = [];
  const extract = tar.extract();
  stream.pipe(extract);
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    out.push({ name: entry.header.name, type: entry.header.type ?? 'file', ...(entry.header.linkname ? { linkname: entry.header.linkname } : {}), data: Buffer.concat(chunks) });
  }
  return out;
}
