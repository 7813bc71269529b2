import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256 } from '../../core/digest.js';
import { MediaType } from '../../core/oci.js';
import { parseReference } from '../../core/reference.js';
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
    await Promise.all(Array.from({ length: 40 }, (_, i) => tags.set([parseReference(`example.com/app:${i}`), parseReference(`local/${i}`)], desc(i))));
    const all = await tags.list();
    expect(Object.keys(all)).toHaveLength(80);
    for (let i = 0; i < 40; i++) {
      expect(all[`example.com/app:${i}`]).toEqual(desc(i));
      expect(await tags.get(parseReference(`local/${i}`))).toEqual(desc(i));
    }
    // No temp file is left behind, and a second store on the root reads the same.
    expect(await readdir(root)).toEqual(['images.json']);
    expect(await new TagStore(root).roots()).toHaveLength(80);
  });

  it('setting tags to the manifest they already name leaves the file as it is; another manifest replaces it', async () => {
    const tags = new TagStore(root);
    const file = path.join(root, 'images.json');
    await tags.set([parseReference('a:1'), parseReference('b:1')], desc(1));
    const before = await stat(file);
    await tags.set([parseReference('a:1'), parseReference('b:1')], desc(1));
    expect((await stat(file)).ino).toBe(before.ino);
    // One of the refs is new: written.
    await tags.set([parseReference('a:1'), parseReference('c:1')], desc(1));
    const grown = await stat(file);
    expect(grown.ino).not.toBe(before.ino);
    await tags.set([parseReference('a:1')], desc(2));
    expect((await stat(file)).ino).not.toBe(grown.ino);
    expect(await tags.list()).toEqual({ 'docker.io/library/a:1': desc(2), 'docker.io/library/b:1': desc(1), 'docker.io/library/c:1': desc(1) });
  });

  it('re-pointing a tag replaces its descriptor', async () => {
    const tags = new TagStore(root);
    await tags.set([parseReference('a:1')], desc(1));
    await tags.set([parseReference('a:1')], desc(2));
    expect(await tags.get(parseReference('a:1'))).toEqual(desc(2));
    expect(await tags.get(parseReference('missing:1'))).toBeUndefined();
  });

  it('names one image however its reference is written: `app` is docker.io/library/app:latest', async () => {
    const tags = new TagStore(root);
    await tags.set([parseReference('app')], desc(1));
    expect(await tags.get(parseReference('docker.io/library/app:latest'))).toEqual(desc(1));
    expect(await tags.get(parseReference('app:latest'))).toEqual(desc(1));
    await tags.set([parseReference('docker.io/library/app:latest')], desc(2));
    expect(await tags.list()).toEqual({ 'docker.io/library/app:latest': desc(2) });
    expect(await tags.get(parseReference('app:other'))).toBeUndefined();
  });

  it('reads a file written with names as typed under their qualified form', async () => {
    await writeFile(path.join(root, 'images.json'), JSON.stringify({ app: desc(1), 'example.com/x:2': desc(2), 'NOT A REF': desc(3) }));
    const tags = new TagStore(root);
    expect(await tags.get(parseReference('docker.io/library/app:latest'))).toEqual(desc(1));
    expect(Object.keys(await tags.list()).sort()).toEqual(['docker.io/library/app:latest', 'example.com/x:2']);
  });
});
