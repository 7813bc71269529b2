import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { sha256 } from '../core/digest.js';
import { readAllBounded } from '../core/streams.js';
import { LazyBlobStore } from './lazy-store.js';
import { LocalContentStore } from './local-store.js';

describe('LazyBlobStore', () => {
  const dirs: string[] = [];
  const store = async () => {
    const d = await mkdtemp(path.join(os.tmpdir(), 'bl-lazy-'));
    dirs.push(d);
    return { dir: d, local: new LocalContentStore(d) };
  };
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('reports a registered blob as present, fetches it once on open, and then holds it locally', async () => {
    const { local } = await store();
    const lazy = new LazyBlobStore(local);
    const bytes = Buffer.from('layer bytes');
    const digest = sha256(bytes);
    let fetches = 0;
    const unregister = lazy.register(new Map([[digest, { size: bytes.length, fetch: async () => (fetches++, Readable.from([bytes])) }]]));
    expect(await lazy.stat(digest)).toEqual({ digest, size: bytes.length });
    expect(await lazy.isLocal(digest)).toBe(false);
    const [a, b] = await Promise.all([lazy.open(digest), lazy.open(digest)]);
    expect((await readAllBounded(a, 1024, 'a')).equals(bytes)).toBe(true);
    expect((await readAllBounded(b, 1024, 'b')).equals(bytes)).toBe(true);
    expect(fetches).toBe(1);
    unregister();
    expect(await lazy.isLocal(digest)).toBe(true);
  });

  it('refuses bytes that do not match the digest and leaves nothing behind', async () => {
    const { dir, local } = await store();
    const lazy = new LazyBlobStore(local);
    const digest = sha256(Buffer.from('the real layer'));
    lazy.register(new Map([[digest, { size: 14, fetch: async () => Readable.from([Buffer.from('a forged layer')]) }]]));
    await expect(lazy.open(digest)).rejects.toThrow(/digest|mismatch/i);
    expect(await local.stat(digest)).toBeUndefined();
    expect(await readdir(path.join(dir, 'ingest'))).toEqual([]);
    expect(await readdir(path.join(dir, 'blobs', 'sha256'))).toEqual([]);
  });

  it('an unregistered blob is simply absent', async () => {
    const { local } = await store();
    const lazy = new LazyBlobStore(local);
    const digest = sha256(Buffer.from('x'));
    expect(await lazy.stat(digest)).toBeUndefined();
    await expect(lazy.open(digest)).rejects.toThrow(/not found/);
  });
});
