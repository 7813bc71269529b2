import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { mountsUnder } from '../../core/mounter.js';
import { pushBusyboxBase } from '../helpers/base-image.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

export const sh = promisify(execFile);

/** A registry with the busybox base, a temp dir, and a CLI runner bound to one state root. */
export interface CliFixture {
  readonly registry: TestRegistry;
  readonly tmp: string;
  readonly root: string;
  readonly base: string;
  /** `buildlite build --root ROOT ...` (other commands: pass the full argv to `cli`). */
  build(args: readonly string[], opts?: { env?: NodeJS.ProcessEnv; input?: string | Buffer }): Promise<CliResult>;
  cli(args: readonly string[], opts?: { env?: NodeJS.ProcessEnv; input?: string | Buffer }): Promise<CliResult>;
  /** A context dir with these files (name → content). */
  context(name: string, files: Record<string, string>): Promise<string>;
  close(): Promise<void>;
}

export async function startCliFixture(prefix: string): Promise<CliFixture> {
  const registry = await startRegistry();
  const tmp = await mkdtemp(path.join(os.tmpdir(), `bl-${prefix}-`));
  try {
    await pushBusyboxBase(registry.host);
  } catch (err) {
    await registry.stop();
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  const root = path.join(tmp, 'state');
  return {
    registry,
    tmp,
    root,
    base: `${registry.host}/library/busybox:latest`,
    build: (args, opts) => runCli(['build', '--root', root, ...args], opts),
    cli: (args, opts) => runCli(args, opts),
    async context(name, files) {
      const dir = path.join(tmp, 'ctx', name);
      for (const [f, body] of Object.entries(files)) {
        await mkdir(path.dirname(path.join(dir, f)), { recursive: true });
        await writeFile(path.join(dir, f), body);
      }
      return dir;
    },
    async close() {
      await registry.stop();
      for (const m of await mountsUnder(tmp)) await sh('umount', ['-l', m]).catch(() => undefined);
      await rm(tmp, { recursive: true, force: true });
    },
  };
}

export interface InspectedImage {
  readonly manifest: { layers: { digest: string; mediaType: string }[]; mediaType: string; config: { mediaType: string } };
  readonly config: {
    created: string;
    config: Record<string, unknown>;
    rootfs: { diff_ids: string[] };
    history: { created?: string; created_by?: string; empty_layer?: boolean }[];
  };
}

/** Manifest and config of a pushed image, read back by skopeo (an independent client). */
export async function inspectRemote(ref: string): Promise<InspectedImage> {
  const { stdout: m } = await sh('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
  const { stdout: c } = await sh('skopeo', ['inspect', '--config', '--raw', '--tls-verify=false', `docker://${ref}`]);
  return { manifest: JSON.parse(m) as InspectedImage['manifest'], config: JSON.parse(c) as InspectedImage['config'] };
}
