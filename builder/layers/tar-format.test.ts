import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeHeader, END_OF_ARCHIVE, padding, type TarHeader } from './tar-format.js';
import { readTar } from './tar-reader.js';

const tmp = mkdtemp(path.join(os.tmpdir(), 'tar-format-'));
afterAll(async () => rm(await tmp, { recursive: true, force: true }));

const longName = `${'n'.repeat(120)}/ü-${'x'.repeat(150)}`;
const headers: TarHeader[] = [
  { name: 'plain', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 5, mtime: 1_600_000_000 },
  { name: longName, type: 'file', mode: 0o600, uid: 3_000_000, gid: 70_000, size: 3, mtime: 1 },
  { name: 'link', type: 'symlink', mode: 0o777, uid: 0, gid: 0, size: 0, mtime: 2, linkname: `/${'l'.repeat(200)}` },
  {
    name: 'cap',
    type: 'file',
    mode: 0o755,
    uid: 0,
    gid: 0,
    size: 0,
    mtime: 3,
    xattrs: new Map([['security.capability', Buffer.from([0x01, 0x00, 0x00, 0x02, 0x80, 0xff, 0x0a, 0x3d, 0x00])]]),
  },
];
const bodies = ['hello', 'abc', '', ''];

function archive(): Buffer {
  const parts: Buffer[] = [];
  headers.forEach((h, i) => {
    parts.push(encodeHeader(h), Buffer.from(bodies[i]!), padding(h.size));
  });
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

describe('tar codec', () => {
  it('round-trips long and non-ASCII names, big ids, long link targets and binary xattrs', async () => {
    const out = [];
    for await (const e of readTar(Readable.from([archive()]))) {
      let body = '';
      for await (const c of e.body) body += c.toString();
      out.push({ ...e, body });
    }
    expect(out.map((e) => e.name)).toEqual(headers.map((h) => h.name));
    expect(out[1]).toMatchObject({ uid: 3_000_000, gid: 70_000, body: 'abc', mode: 0o600 });
    expect(out[2]!.linkname).toBe(headers[2]!.linkname);
    expect(out[3]!.xattrs.get('security.capability')).toEqual(headers[3]!.xattrs!.get('security.capability'));
    expect(out[0]!.body).toBe('hello');
  });

  it('is read the same by GNU tar and by tar-stream (independent readers)', async () => {
    const file = path.join(await tmp, 'a.tar');
    await writeFile(file, archive());
    const listing = execFileSync('tar', ['-tv', '--numeric-owner', '-f', file], { encoding: 'utf8' });
    expect(listing).toContain('3000000/70000');
    expect(listing).toContain(longName);
    expect(listing).toContain(`link -> /${'l'.repeat(200)}`);
    const names: string[] = [];
    const ex = tarStream.extract();
    Readable.from([archive()]).pipe(ex);
    for await (const entry of ex) {
      names.push(entry.header.name);
      entry.resume();
    }
    expect(names).toEqual(headers.map((h) => h.name));
  });

  it('is byte-stable: the same header always encodes the same', () => {
    expect(archive().equals(archive())).toBe(true);
  });
});
