import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256 } from '../../core/digest.js';
import { MediaType } from '../../core/oci.js';
import { TagStore } from './tags.js';

const desc = (n: number) => ({ mediaType: MediaType.OciManifest, digest: sha256(Buffer.from(`manifest ${n}`)), size: 100 + n });

describe('TagStore', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'bl-tags-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('keeps every tag when many builds of one process set theirs at once', async () => {
    const tags = new TagStore(root);
    await Promise.all(Array.from({ length: 40 }, (_, i) => tags.set([`example.com/app:${i}`, `local/${i}`], desc(i))));
    const all = await tags.list();
    expect(Object.keys(all)).toHaveLength(80);
    for (let i = 0; i < 40; i++) {
      expect(all[`example.com/app:${i}`]).toEqual(desc(i));
      expect(await tags.get(`local/${i}`)).toEqual(desc(i));
    }
    // No temp file is left behind, and a second store on the root reads the same.
    expect(await readdir(root)).toEqual(['images.json']);
    expect(await new TagStore(root).roots()).toHaveLength(80);
  });

  it('re-pointing a tag replaces its descriptor', async () => {
    const tags = new TagStore(root);
    await tags.set(['a:1'], desc(1));
    await tags.set(['a:1'], desc(2));
    expect(await tags.get('a:1')).toEqual(desc(2));
    expect(await tags.get('missing:1')).toBeUndefined();
  });
});
