import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256, type Digest } from '../core/digest.js';
import { CacheKeyIndex, type LayerRef } from './index.js';

const layer = (n: number): LayerRef => ({
  mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
  digest: sha256(`blob-${n}`),
  size: 100 + n,
  diffId: sha256(`diff-${n}`),
});

describe('CacheKeyIndex', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'buildlite-index-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('stores and returns the full layer chain of a key, and misses an unknown key', async () => {
    const index = new CacheKeyIndex(join(dir, 'a'));
    const key = sha256('key-1');
    expect(await index.get(key)).toBeUndefined();
    await index.put(key, { layers: [layer(1), layer(2)], createdAt: 1000, lastUsedAt: 1000 });
    const rec = await index.get(key);
    expect(rec?.layers).toEqual([layer(1), layer(2)]);
    expect(rec?.createdAt).toBe(1000);
    // Written atomically: no temp file is left beside it.
    expect(await readdir(join(dir, 'a', 'records'))).toEqual([`${key.slice(7)}.json`]);
  });

  it('touch moves lastUsedAt forward without rewriting the record', async () => {
    const index = new CacheKeyIndex(join(dir, 'b'));
    const key = sha256('key-touch');
    await index.put(key, { layers: [layer(1)], createdAt: 1000, lastUsedAt: 1000 });
    const later = Date.now() + 60_000;
    await index.touch(key, later);
    expect((await index.get(key))?.lastUsedAt).toBe(later);
    expect((await index.get(key))?.createdAt).toBe(1000);
    await index.touch(sha256('absent'));
  });

  it('lists, deletes, and treats a corrupt record as a miss', async () => {
    const index = new CacheKeyIndex(join(dir, 'c'));
    const keys = [sha256('k1'), sha256('k2'), sha256('k3')];
    for (const k of keys) await index.put(k, { layers: [layer(1)], createdAt: 1, lastUsedAt: 1 });
    await index.delete(keys[1]!);
    const listed: Digest[] = [];
    for await (const e of index.list()) {
      listed.push(e.key);
      expect(e.diskSize).toBeGreaterThan(0);
    }
    expect(listed.sort()).toEqual([keys[0]!, keys[2]!].sort());
    await writeFile(join(dir, 'c', 'records', `${keys[0]!.slice(7)}.json`), '{"layers":[{"digest":"../x"}]');
    expect(await index.get(keys[0]!)).toBeUndefined();
  });

  it('keeps pre-images for why-miss and drops them with their record', async () => {
    const index = new CacheKeyIndex(join(dir, 'd'));
    const key = sha256('k-pre');
    const pre = { kind: 'exec', args: ['sh', '-c', 'make'], inputs: [sha256('parent')] };
    await index.put(key, { layers: [], createdAt: 1, lastUsedAt: 1 });
    await index.putPreimage(key, pre);
    expect(await index.getPreimage(key)).toEqual(pre);
    const listed: Digest[] = [];
    for await (const k of index.listPreimages()) listed.push(k);
    expect(listed).toEqual([key]);
    await index.delete(key);
    expect(await index.getPreimage(key)).toBeUndefined();

    const orphan = sha256('orphan');
    await index.putPreimage(orphan, pre);
    expect(await index.sweepOrphanPreimages()).toBe(1);
    expect(await index.getPreimage(orphan)).toBeUndefined();
  });

  it('refuses keys and layer digests that are not digests', async () => {
    const index = new CacheKeyIndex(join(dir, 'e'));
    await expect(index.get('../../etc/passwd' as Digest)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const bad = { ...layer(1), digest: 'sha256:nope' as Digest };
    await expect(index.put(sha256('x'), { layers: [bad], createdAt: 1, lastUsedAt: 1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(await readFile(join(dir, 'e', 'records', `${sha256('x').slice(7)}.json`)).catch(() => 'absent')).toBe('absent');
  });
});
