import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/** Makes a rename or create in `dir` durable: the entry itself lives in the directory. */
export async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/**
 * Writes a small file so readers see either the old or the new bytes, never a
 * mix: temp file in the same dir, fsync, rename, fsync the dir. `durable: false`
 * skips both fsyncs, for files that only need to be seen by other processes
 * now and are worthless after a crash anyway (leases). `createDir: false`
 * fails (ENOENT) where the directory is gone, instead of making it again.
 */
export async function atomicWriteFile(path: string, data: string | Uint8Array, mode = 0o600, opts: { durable?: boolean; createDir?: boolean } = {}): Promise<void> {
  const durable = opts.durable ?? true;
  const dir = dirname(path);
  if (opts.createDir ?? true) await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  const h = await open(tmp, 'wx', mode);
  try {
    try {
      await h.writeFile(data);
      if (durable) await h.sync();
    } finally {
      await h.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  if (durable) await fsyncDir(dir);
}

/** Removes a file; an absent file is fine. */
export async function unlinkQuiet(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
}
