import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Digest } from '../core/digest.js';
import { FileBlobHomes } from './blob-homes.js';

const D = `sha256:${'ab'.repeat(32)}` as Digest;
const E = `sha256:${'cd'.repeat(32)}` as Digest;

describe('FileBlobHomes', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'bl-homes-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('remembers repositories per blob and registry, across instances, each once, oldest first', async () => {
    const a = new FileBlobHomes(path.join(dir, 'homes'));
    a.record('127.0.0.1:5000', 'library/busybox', D);
    await a.flush();
    a.record('127.0.0.1:5000', 'app/one', D);
    a.record('127.0.0.1:5000', 'library/busybox', D);
    a.record('reg.example.com', 'other/repo', D);
    a.record('127.0.0.1:5000', 'app/e', E);
    await a.flush();
    const b = new FileBlobHomes(path.join(dir, 'homes'));
    expect(await b.lookup('127.0.0.1:5000', D)).toEqual(['library/busybox', 'app/one']);
    expect(await b.lookup('reg.example.com', D)).toEqual(['other/repo']);
    expect(await b.lookup('127.0.0.1:5000', E)).toEqual(['app/e']);
    expect(await b.lookup('127.0.0.1:5001', D)).toEqual([]);
    expect((await readFile(path.join(dir, 'homes', D.replace(':', '-')), 'utf8')).split('\n').filter(Boolean)).toHaveLength(3);
  });

  it('a blob nobody recorded, a missing directory: no homes', async () => {
    expect(await new FileBlobHomes(path.join(dir, 'absent')).lookup('127.0.0.1:5000', D)).toEqual([]);
  });

  it('ignores lines that are no registry and repository, and names it would not write', async () => {
    await mkdir(path.join(dir, 'homes'));
    await writeFile(path.join(dir, 'homes', D.replace(':', '-')), '127.0.0.1:5000 ../../etc\ngarbage\n127.0.0.1:5000 Upper/Case\n127.0.0.1:5000 good/repo\n');
    const h = new FileBlobHomes(path.join(dir, 'homes'));
    h.record('127.0.0.1:5000', 'bad repo\n127.0.0.1:5000 injected', E);
    await h.flush();
    expect(await h.lookup('127.0.0.1:5000', D)).toEqual(['good/repo']);
    expect(await h.lookup('127.0.0.1:5000', E)).toEqual([]);
  });

  it('stops growing a file at its bound', async () => {
    const h = new FileBlobHomes(path.join(dir, 'homes'));
    for (let i = 0; i < 20; i++) {
      h.record('127.0.0.1:5000', `repo/n${i}`, D);
      await h.flush();
    }
    const lines = (await readFile(path.join(dir, 'homes', D.replace(':', '-')), 'utf8')).split('\n').filter(Boolean);
    expect(lines).toHaveLength(8);
    expect(await h.lookup('127.0.0.1:5000', D)).toEqual(lines.map((l) => l.split(' ')[1]));
  });
});
