import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildliteClient } from '../../api/index.js';
import { runCli } from '../helpers/cli.js';
import { logLines, startServiceWithBase, TOKENS, type ServiceWithBase } from '../helpers/service.js';
import { tarOf } from '../helpers/tar.js';

/** Files of the shared contexts store (each stored context is one blob). */
async function storedBlobs(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) await walk(path.join(d, e.name));
      else out.push(path.join(d, e.name));
    }
  };
  await walk(dir);
  return out;
}

describe('--build-context through a build service: directories are uploaded like the build context', () => {
  let s: ServiceWithBase;
  let ctx: string;
  let named: string;

  beforeAll(async () => {
    s = await startServiceWithBase({ workers: 1 });
    ctx = path.join(s.svc.dir, 'ctx');
    named = path.join(s.svc.dir, 'named');
    await mkdir(ctx, { recursive: true });
    await mkdir(named, { recursive: true });
    await writeFile(path.join(ctx, 'Dockerfile'), `FROM ${s.base} AS deps\nRUN echo the-stage-ran && exit 3\nFROM ${s.base}\nCOPY --from=deps lib.txt /lib.txt\nRUN cat /lib.txt && test ! -e /secret.tmp\n`);
    await writeFile(path.join(named, 'lib.txt'), 'from a named directory\n');
    await writeFile(path.join(named, 'secret.tmp'), 'never sent\n');
    await writeFile(path.join(named, '.dockerignore'), '*.tmp\n');
  });
  afterAll(async () => {
    await s?.stop();
  });

  it('a directory context replaces the stage on the worker; the same directory is not uploaded twice', async () => {
    const args = ['build', '--server', s.svc.addr, '--token', TOKENS.alice, '--progress', 'plain', '--build-context', `deps=${named}`, ctx];
    const first = await runCli(args);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr + first.stdout).toContain('from a named directory');
    expect(first.stderr + first.stdout).not.toContain('the-stage-ran');
    const stored = (await storedBlobs(s.svc.contexts)).length;
    const puts = logLines(s.svc.api.output()).filter((l) => l['msg'] === 'context stored').length;
    expect(puts).toBe(1);

    const second = await runCli(args);
    expect(second.code, second.stderr).toBe(0);
    // Neither the build context nor the named one went again: the server had both digests.
    expect((await storedBlobs(s.svc.contexts)).length).toBe(stored);
    expect(logLines(s.svc.api.output()).filter((l) => l['msg'] === 'context stored').length).toBe(puts);
  });

  it('the API: a named context must be stored first, and a path is never taken', async () => {
    const c = new BuildliteClient(s.svc.addr, TOKENS.alice);
    try {
      const missing = `sha256:${'e'.repeat(64)}`;
      await expect(
        c.submit({ dockerfile: `FROM ${s.base}\n`, named_contexts: [{ name: 'x', type: 'local', context_digest: missing, ref: '', tag: '', digest: '', url: '' }] }, tarOf({ a: '1' })),
      ).rejects.toThrow(/named context sha256:e+ is not stored/);
      await expect(
        c.submit({ dockerfile: `FROM ${s.base}\n`, named_contexts: [{ name: 'x', type: 'local', context_digest: '', ref: '', tag: '', digest: '', url: '/etc' }] }, tarOf({ a: '1' })),
      ).rejects.toThrow(/uploaded with PutContext/);
      await expect(
        c.submit({ dockerfile: `FROM ${s.base}\n`, named_contexts: [{ name: 'x', type: 'git', context_digest: '', ref: '', tag: '', digest: '', url: 'https://u:p@h/r.git' }] }, tarOf({ a: '1' })),
      ).rejects.toThrow(/credentials in a git URL are refused/);
      const stored = await c.putContext(tarOf({ 'f.txt': 'put\n' }));
      expect(stored).toMatch(/^sha256:[a-f0-9]{64}$/);
      expect(await c.hasContext(stored)).toBe(true);
    } finally {
      c.close();
    }
  });
});
