import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256, type Digest } from '../core/digest.js';
import { describeContentStore } from '../test/suites/content-store.suite.js';
import { compileForChild } from '../test/cache/compile-for-child.js';
import { LocalContentStore, writeBlob } from './index.js';

describeContentStore('LocalContentStore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'buildlite-store-'));
  return { store: new LocalContentStore(join(dir, 'content')), dispose: () => rm(dir, { recursive: true, force: true }) };
});

describe('LocalContentStore on disk', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'buildlite-store-disk-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps blobs at blobs/sha256/<hex> in private directories, and ingests elsewhere', async () => {
    const store = new LocalContentStore(join(dir, 'layout'));
    const info = await writeBlob(store, 'layout');
    const hex = info.digest.slice('sha256:'.length);
    expect(await readFile(join(dir, 'layout', 'blobs', 'sha256', hex), 'utf8')).toBe('layout');
    for (const d of ['', 'blobs', 'blobs/sha256', 'ingest']) {
      expect((await stat(join(dir, 'layout', d))).mode & 0o777).toBe(0o700);
    }
    expect(await readdir(join(dir, 'layout', 'ingest'))).toEqual([]);
  });

  it('refuses a malformed digest instead of turning it into a path', async () => {
    const store = new LocalContentStore(join(dir, 'bad'));
    const evil = 'sha256:../../../etc/passwd' as Digest;
    await expect(store.open(evil)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(store.stat(evil)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(store.ingest('x', { digest: evil })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('ignores foreign files in the blob directory when listing', async () => {
    const store = new LocalContentStore(join(dir, 'foreign'));
    const info = await writeBlob(store, 'real');
    await writeFile(join(dir, 'foreign', 'blobs', 'sha256', 'not-a-digest'), 'junk');
    const listed = [];
    for await (const b of store.list()) listed.push(b);
    expect(listed).toEqual([info]);
  });

  it('a writer killed with SIGKILL mid-ingest leaves no blob under a wrong name, and the next write succeeds', async () => {
    // The child runs the compiled store (no TS loader there).
    const [module] = await compileForChild(join(dir, 'compiled'), ['cache/local-store.ts']);
    const root = join(dir, 'crash');
    const chunk = Buffer.alloc(64 * 1024, 7);
    const script = `
      const { LocalContentStore } = await import(process.argv[1]);
      const store = new LocalContentStore(process.argv[2]);
      const w = await store.ingest('slow-layer');
      const chunk = Buffer.alloc(${chunk.length}, 7);
      for (let i = 0; ; i++) {
        await new Promise((r) => w.write(chunk, r));
        if (i === 3) process.stdout.write('written\\n');
        await new Promise((r) => setTimeout(r, 5));
      }`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, module!, root], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        child.once('error', reject);
        child.once('exit', (code) => reject(new Error(`writer exited early with ${code}`)));
        child.stdout.on('data', (d: Buffer) => d.toString().includes('written') && resolve());
      });
    } finally {
      child.kill('SIGKILL');
    }
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));
    expect(child.signalCode).toBe('SIGKILL');

    const ingests = await readdir(join(root, 'ingest'));
    expect(ingests.length).toBe(1);
    expect((await stat(join(root, 'ingest', ingests[0]!))).size).toBeGreaterThanOrEqual(4 * chunk.length);
    // Every blob present must be named by the hash of its bytes; here there must be none at all.
    for (const name of await readdir(join(root, 'blobs', 'sha256'))) {
      const bytes = await readFile(join(root, 'blobs', 'sha256', name));
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(name);
    }
    expect(await readdir(join(root, 'blobs', 'sha256'))).toEqual([]);

    const store = new LocalContentStore(root);
    const full = Buffer.concat(Array.from({ length: 10 }, () => chunk));
    const info = await writeBlob(store, full);
    expect(info.digest).toBe(sha256(full));
    expect(await store.stat(info.digest)).toEqual(info);
    expect(await store.sweepIngests(0)).toBe(1);
    expect(await readdir(join(root, 'ingest'))).toEqual([]);
  });
});
