import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CacheMounts, type CacheMountSharing } from '../../cache/index.js';
import { compileForChild } from './compile-for-child.js';

/** A second worker process on the same state root, holding one cache mount until told to let go. */
class Holder {
  private constructor(readonly child: ChildProcessWithoutNullStreams, readonly dir: string) {}

  static async start(module: string, root: string, sharing: CacheMountSharing): Promise<Holder> {
    const script = `
      const { CacheMounts } = await import(process.argv[1]);
      const h = await new CacheMounts(process.argv[2]).acquire('shared-id', process.argv[3]);
      process.stdout.write('held ' + h.dir + '\\n');
      process.stdin.once('data', async () => { await h.release(); process.stdout.write('released\\n'); process.exit(0); });`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, module, root, sharing], { stdio: 'pipe' });
    const dir = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`holder exited with ${code}`)));
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /held (.*)\n/.exec(out);
        if (m) resolve(m[1]!);
      });
    });
    return new Holder(child, dir);
  }

  /** Asks the holder to release; returns when it was asked (the release happens after). */
  async release(): Promise<number> {
    const released = new Promise<void>((resolve) => this.child.stdout.on('data', (d: Buffer) => d.toString().includes('released') && resolve()));
    const askedAt = Date.now();
    this.child.stdin.write('go\n');
    await released;
    return askedAt;
  }

  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGKILL');
    await exited;
  }
}

describe('cache mount sharing across processes', () => {
  let dir: string;
  let module: string;
  const holders: Holder[] = [];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'buildlite-cmx-'));
    module = (await compileForChild(join(dir, 'compiled'), ['cache/cache-mounts.ts']))[0]!;
  }, 60_000);
  afterAll(async () => {
    for (const h of holders) await h.kill();
    await rm(dir, { recursive: true, force: true });
  });

  it('locked: waits for the other process to release', async () => {
    const root = join(dir, 'locked');
    const other = await Holder.start(module, root, 'locked');
    holders.push(other);
    const mounts = new CacheMounts(root);
    let acquiredAt = 0;
    const mine = mounts.acquire('shared-id', 'locked').then((h) => ((acquiredAt = Date.now()), h));
    await new Promise((r) => setTimeout(r, 200));
    expect(acquiredAt).toBe(0);
    const askedAt = await other.release();
    const h = await mine;
    expect(acquiredAt).toBeGreaterThanOrEqual(askedAt);
    expect(h.dir).toBe(other.dir);
    await h.release();
  });

  it('a holder killed with SIGKILL does not block others for good', async () => {
    const root = join(dir, 'killed');
    const other = await Holder.start(module, root, 'locked');
    holders.push(other);
    await other.kill();
    const h = await new CacheMounts(root).acquire('shared-id', 'locked', { signal: AbortSignal.timeout(5000) });
    expect(h.dir).toBe(other.dir);
    await h.release();
  });

  it('private: another process gets another directory; shared: the same one, and locked waits for shared', async () => {
    const root = join(dir, 'private');
    const other = await Holder.start(module, root, 'private');
    holders.push(other);
    const mounts = new CacheMounts(root);
    const mine = await mounts.acquire('shared-id', 'private');
    expect(mine.dir).not.toBe(other.dir);
    await mine.release();
    await other.release();

    const root2 = join(dir, 'shared');
    const sharer = await Holder.start(module, root2, 'shared');
    holders.push(sharer);
    const m2 = new CacheMounts(root2);
    const s = await m2.acquire('shared-id', 'shared');
    expect(s.dir).toBe(sharer.dir);
    await s.release();
    const ac = new AbortController();
    const locked = m2.acquire('shared-id', 'locked', { signal: ac.signal });
    await new Promise((r) => setTimeout(r, 150));
    ac.abort();
    await expect(locked).rejects.toBeTruthy();
    await sharer.release();
    await (await m2.acquire('shared-id', 'locked', { signal: AbortSignal.timeout(5000) })).release();
  });
});
