/**
 * Errors that say where: a missing bind-mount source is caught before the
 * sandbox starts (runc's own error would print a host path), and a full disk
 * while a step's layer is written says what was being written, at the step's
 * line, with no host path.
 */
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountsUnder } from '../../core/mounter.js';
import { SecurityEnv } from './harness.js';

const sh = promisify(execFile);

describe('build errors name their line and what failed, never a host path', () => {
  let env: SecurityEnv;
  beforeAll(async () => {
    env = await SecurityEnv.start();
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('RUN --mount=type=bind with a source that does not exist: "not found in the build context" / "in stage", before the sandbox', async () => {
    const { builder, root } = await env.builder();
    try {
      const ctx = await env.context({ 'present.txt': 'p\n' });
      const fromContext = await env.build(builder, `FROM ${env.base}\nRUN --mount=type=bind,source=missing/dir,target=/m echo never-ran\n`, { context: ctx });
      expect(fromContext.error).toMatchObject({ code: 'NOT_FOUND', message: 'RUN --mount=type=bind: source "missing/dir" not found in the build context', range: { startLine: 2 } });
      expect(fromContext.logs).not.toContain('never-ran');
      const fromStage = await env.build(builder, `FROM ${env.base} AS tools\nRUN echo x > /x\nFROM ${env.base}\nRUN --mount=type=bind,from=tools,source=/nope,target=/m true\n`, { context: ctx });
      expect(fromStage.error).toMatchObject({ code: 'NOT_FOUND', message: 'RUN --mount=type=bind: source "/nope" not found in stage tools', range: { startLine: 4 } });
      for (const e of [fromContext.error!, fromStage.error!]) {
        expect(e.message).not.toContain(env.tmp);
        expect(JSON.stringify(e)).not.toContain(root);
      }
      expect(await env.runcContainers(root)).toBe('');
    } finally {
      await builder.close();
    }
  });

  it('a disk that fills while a step\'s layer is written: a STORE error saying so, at the RUN line; nothing left mounted or running', async () => {
    const root = path.join(env.tmp, 'small-disk');
    await mkdir(root, { recursive: true });
    // 48 MiB: room for the base and the step's 24 MiB file, not for that file's layer blob as well.
    await sh('mount', ['-t', 'tmpfs', '-o', 'size=48m,mode=0700', 'tmpfs', root]);
    try {
      const { Builder } = await import('../../builder/index.js');
      const builder = await Builder.open({ root, insecureRegistries: [env.registry.host] });
      try {
        const out = await env.build(builder, `FROM ${env.base}\nRUN head -c 25165824 /dev/urandom > /big && echo wrote\n`);
        expect(out.logs).toContain('wrote');
        expect(out.error).toMatchObject({ code: 'STORE', range: { startLine: 2 } });
        expect(out.error!.message).toMatch(/^writing this step's layer: ENOSPC: no space left on device/);
        expect(out.error!.message).not.toContain(root);
        expect(await env.runcContainers(root)).toBe('');
      } finally {
        await builder.close();
      }
      expect((await mountsUnder(root)).filter((m) => m !== root)).toEqual([]);
    } finally {
      await sh('umount', ['-l', root]).catch(() => undefined);
    }
  });
});
