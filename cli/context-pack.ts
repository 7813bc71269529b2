import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, type Stats } from 'node:fs';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pack as tarPack, type Pack } from 'tar-stream';
import { parseIgnoreFile, PathMatcher } from '../core/ignore.js';

export interface PackedContext {
  readonly file: string;
  readonly digest: string;
  readonly size: number;
  readonly entries: number;
  /** Paths not sent: sockets and device nodes. */
  readonly skipped: readonly string[];
}

/**
 * Packs a context directory into a tar file for upload. What the worker
 * unpacks must be what a local build reads, so the image is the same either
 * way: the root directory goes first (`./`, its mode and mtime: `COPY . dest`
 * gives them to dest), hardlinked files go as hardlinks, FIFOs as FIFOs, and a
 * directory the .dockerignore excludes is still described when `!` rules may
 * re-include something under it (the worker's copy then gives it the real
 * mode and mtime, as a local copy does).
 *
 * Symlinks go as symlinks (their targets are never read); files excluded by
 * the .dockerignore (or the Dockerfile-specific one, which wins) are not read
 * or sent; sockets and device nodes are skipped. Entries are sorted and owners
 * zeroed, so an unchanged directory packs to the same digest and the server
 * can skip the upload.
 */
export async function packContext(dir: string, dest: string, dockerignore?: string): Promise<PackedContext> {
  const ignoreText = dockerignore ?? (await readFile(path.join(dir, '.dockerignore'), 'utf8').catch(() => ''));
  const matcher = new PathMatcher(parseIgnoreFile(ignoreText));
  const pack = tarPack();
  const hash = createHash('sha256');
  let size = 0;
  const skipped: string[] = [];
  let entries = 0;
  // dev:ino → the name the first link of a multiply-linked file was sent as.
  const links = new Map<string, string>();
  const out = createWriteStream(dest, { mode: 0o600 });
  // A second 'data' listener beside pipeline's: it sees every chunk, and backpressure still pauses both.
  pack.on('data', (data: unknown) => {
    const chunk = data as Buffer;
    hash.update(chunk);
    size += chunk.length;
  });
  const written = pipeline(pack, out);

  const send = async (h: Header, file?: string) => {
    await entry(pack, h, file);
    entries++;
  };
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(path.join(dir, rel))).sort();
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = path.join(dir, r);
      const st = await lstat(abs);
      const ignored = r !== '.dockerignore' && !matcher.empty && matcher.matches(r);
      if (st.isDirectory()) {
        // With `!` re-inclusions, something below an ignored dir may still be wanted.
        if (ignored && !matcher.hasExclusions) continue;
        await send({ name: `${r}/`, type: 'directory', ...meta(st) });
        await walk(r);
        continue;
      }
      if (ignored) continue;
      const key = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1 ? links.get(key) : undefined;
      if (first !== undefined) {
        await send({ name: r, type: 'link', linkname: first, ...meta(st) });
      } else if (st.isFile()) {
        await send({ name: r, type: 'file', size: st.size, ...meta(st) }, abs);
        if (st.nlink > 1) links.set(key, r);
      } else if (st.isSymbolicLink()) {
        await send({ name: r, type: 'symlink', linkname: await readlink(abs), mode: 0o777, mtime: st.mtime });
      } else if (st.isFIFO()) {
        await send({ name: r, type: 'fifo', ...meta(st) });
      } else {
        // Device nodes are never created from an upload (the worker would refuse them); sockets cannot be copied.
        skipped.push(r);
      }
    }
  };
  try {
    await send({ name: './', type: 'directory', ...meta(await lstat(dir)) });
    await walk('');
    pack.finalize();
    await written;
  } catch (err) {
    pack.destroy(err as Error);
    await written.catch(() => undefined);
    throw err;
  }
  return { file: dest, digest: `sha256:${hash.digest('hex')}`, size, entries, skipped };
}

interface Header {
  name: string;
  type: 'file' | 'link' | 'directory' | 'symlink' | 'fifo';
  mode: number;
  mtime: Date;
  size?: number;
  linkname?: string;
}

function meta(st: Stats): { mode: number; mtime: Date } {
  return { mode: st.mode & 0o7777, mtime: st.mtime };
}

function entry(pack: Pack, h: Header, file?: string): Promise<void> {
  const header = { ...h, uid: 0, gid: 0, uname: '', gname: '' };
  return new Promise((resolve, reject) => {
    if (!file) {
      pack.entry(header, (err) => (err ? reject(err) : resolve()));
      return;
    }
    const sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
    // A file that changes size while packed fails the entry (tar-stream checks the size) rather than sending a torn tar.
    pipeline(createReadStream(file), sink).catch(reject);
  });
}
