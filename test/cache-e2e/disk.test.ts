import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildEvent, BuildRequest } from '../../core/build.js';
import { Builder } from '../../builder/index.js';
import { pushBusyboxBase } from '../helpers/base-image.js';
import { CLI, runCli } from '../helpers/cli.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { drive, unmountAll, writeTree } from '../helpers/build-driver.js';
import { fileAttrs, takesTopdir } from '../helpers/file-attrs.js';

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest('hex');
}

describe('bounded disk, crash safety, du/prune/why-miss from the CLI', () => {
  let registry: TestRegistry;
  let tmp: string;
  let base: string;

  beforeAll(async () => {
    registry = await startRegistry();
    await pushBusyboxBase(registry.host);
    base = `${registry.host}/library/busybox:latest`;
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-disk-'));
  });

  afterAll(async () => {
    await registry?.stop();
    if (tmp) {
      await unmountAll(tmp);
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it('SIGKILL while a layer is being written leaves no blob under a wrong name; the next build succeeds', async () => {
    const ctx = path.join(tmp, 'crash-ctx');
    const root = path.join(tmp, 'crash-state');
    await writeTree(ctx, { Dockerfile: `FROM ${base}\nRUN dd if=/dev/urandom of=/big bs=1M count=48 2>/dev/null\n` });
    const ingest = path.join(root, 'content', 'ingest');
    const child = spawn(process.execPath, [CLI, 'build', '--root', root, '--progress', 'plain', ctx], { stdio: 'ignore' });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    let killedMidWrite = false;
    try {
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline && child.exitCode === null) {
        const names = existsSync(ingest) ? await readdir(ingest) : [];
        const sizes = await Promise.all(names.map((n) => stat(path.join(ingest, n)).then((s) => s.size, () => 0)));
        if (sizes.some((s) => s > 256 * 1024)) {
          child.kill('SIGKILL');
          killedMidWrite = true;
          break;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    }
    expect(killedMidWrite).toBe(true);

    const blobsDir = path.join(root, 'content', 'blobs', 'sha256');
    for (const name of await readdir(blobsDir)) expect(await sha256File(path.join(blobsDir, name))).toBe(name);

    // The next build (a new process) sweeps what the dead one left and completes.
    const again = await runCli(['build', '--root', root, '--progress', 'plain', ctx]);
    expect(again.stderr).not.toMatch(/error/i);
    expect(again.code).toBe(0);
    for (const name of await readdir(blobsDir)) expect(await sha256File(path.join(blobsDir, name))).toBe(name);
  });

  it('prune with a hard cap during a running build: usage ends under the cap and the build still succeeds', async () => {
    const ctx = path.join(tmp, 'cap-ctx');
    await writeTree(ctx, { 'x.txt': 'x\n' });
    const builder = await Builder.open({ root: path.join(tmp, 'cap-state'), parallelism: 2 });
    const req = (dockerfile: string): BuildRequest => ({ dockerfile, context: { dir: ctx } });
    // Old cache nothing will need again: three images of 3 MiB each.
    for (const i of [1, 2, 3]) {
      const out = await drive(builder, req(`FROM ${base}\nRUN dd if=/dev/urandom of=/fill bs=1M count=3 2>/dev/null && echo ${i}\n`));
      expect(out.error).toBeUndefined();
    }

    const events: BuildEvent[] = [];
    let runStarted!: () => void;
    const started = new Promise<void>((r) => (runStarted = r));
    const running = (async () => {
      for await (const e of builder.build(req(`FROM ${base}\nCOPY x.txt /x.txt\nRUN sleep 2 && cat /x.txt > /y.txt\n`))) {
        events.push(e);
        if (e.type === 'vertex' && e.state === 'started' && /RUN sleep/.test(e.name)) runStarted();
      }
    })();
    await started;

    const before = await builder.diskUsage();
    const held = before.items.filter((i) => i.inUse).reduce((n, i) => n + i.size, 0);
    const cap = held + (256 << 10);
    expect(before.total).toBeGreaterThan(cap + (6 << 20));
    const result = await builder.prune({ keepStorage: cap });
    expect(result.underBudget).toBe(true);
    expect(result.freedBytes).toBeGreaterThan(6 << 20);
    expect((await builder.diskUsage()).total).toBeLessThanOrEqual(cap);

    await running;
    const last = events[events.length - 1];
    expect(last?.type).toBe('result');
    // The image it made is whole: every layer blob is in the store.
    if (last?.type === 'result') {
      const manifest = JSON.parse(await readBlob(builder, last.result.imageDigest)) as { layers: Array<{ digest: string }> };
      for (const l of manifest.layers) expect(await builder.store.stat(l.digest as never)).toBeDefined();
    }
  });

  it.runIf(takesTopdir())('a state root spreads the trees it makes over ext4 block groups: TOPDIR on snapshots, tmp and cache mounts', async () => {
    const ctx = path.join(tmp, 'spread-ctx');
    await writeTree(ctx, { 'x.txt': 'x\n' });
    const root = path.join(tmp, 'spread-state');
    const builder = await Builder.open({ root });
    try {
      const out = await drive(builder, { dockerfile: `FROM ${base}\nRUN --mount=type=cache,target=/c echo x > /c/x && cp /c/x /x\n`, context: { dir: ctx } });
      expect(out.error).toBeUndefined();
    } finally {
      await builder.close();
    }
    for (const dir of ['snapshots/snapshots', 'tmp', 'cache-mounts']) expect(fileAttrs(path.join(root, dir)), dir).toContain('T');
  });

  it('du, prune and debug why-miss work from the CLI', async () => {
    const ctx = path.join(tmp, 'cli-ctx');
    const root = path.join(tmp, 'cli-state');
    await writeTree(ctx, { Dockerfile: `FROM ${base}\nCOPY app.txt /app.txt\nRUN cat /app.txt\n`, 'app.txt': 'one\n' });
    const build = () => runCli(['build', '--root', root, '--progress', 'plain', '--debug-cache', ctx]);
    expect((await build()).code).toBe(0);
    await writeFile(path.join(ctx, 'app.txt'), 'two\n');
    expect((await build()).code).toBe(0);

    const why = await runCli(['debug', 'why-miss', '--root', root, '--last']);
    expect(why.code).toBe(0);
    // The COPY missed because the content of what it copies changed; the RUN because its input did.
    expect(why.stdout).toMatch(/COPY app\.txt \/app\.txt[\s\S]*content\[0\]/);
    expect(why.stdout).toMatch(/RUN cat \/app\.txt[\s\S]*because its input changed/);

    const du = await runCli(['du', '--root', root, '--format', 'json']);
    expect(du.code).toBe(0);
    const usage = JSON.parse(du.stdout) as { total: number; byKind: Record<string, { count: number }> };
    expect(usage.byKind['cache-record']!.count).toBeGreaterThanOrEqual(3);
    expect(usage.byKind['blob']!.count).toBeGreaterThan(0);
    expect((await runCli(['du', '--root', root])).stdout).toMatch(/^KIND\s+COUNT\s+SIZE\s+LAST USED/);

    const refused = await runCli(['prune', '--root', root, '--all']);
    expect(refused.code).toBe(2);
    const pruned = await runCli(['prune', '--root', root, '--all', '--force']);
    expect(pruned.code).toBe(0);
    expect(pruned.stdout).toMatch(/Total reclaimed: [1-9]/);
    const after = JSON.parse((await runCli(['du', '--root', root, '--format', 'json'])).stdout) as typeof usage;
    expect(after.byKind['cache-record']!.count).toBe(0);
    expect(after.byKind['snapshot']!.count).toBe(0);
    expect(after.total).toBeLessThan(usage.total);
  });
});

async function readBlob(builder: Builder, digest: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of await builder.store.open(digest as never)) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
