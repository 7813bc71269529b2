import { chmodSync, closeSync, constants, copyFileSync, lchownSync, linkSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, utimesSync, type Stats } from 'node:fs';
import path from 'node:path';

/**
 * Files a COPY can take from an earlier run of the same COPY instead of
 * writing them again. Creating a small file on ext4 (through overlay) costs
 * ~0.1 ms, a hard link a sixth of that: rerunning a COPY of 5,000 files after
 * one edit wrote 5,000 files again for one changed byte.
 *
 * The donor is the own directory of a committed snapshot (an earlier result
 * of this COPY); its files never change once committed, so sharing their
 * inodes is safe as long as nothing writes through the link, and nothing
 * does: the new snapshot is committed as is, and later steps see it only as a
 * lower dir (overlay copies a file up before changing it).
 *
 * A file is taken only when the donor's file at the same path is a regular
 * file with exactly the metadata the copy would give (owner, mode, mtime) and
 * exactly the same bytes (compared in full, never guessed from stat data).
 * The copier leaves such a file out; once the snapshot is unmounted, `link`
 * puts the donor's inode at its name in the upper dir (never under a mounted
 * overlay), restoring the parent directory's times the copy had set. Only
 * files inside a directory the copy copies are offered: that directory is in
 * the upper dir (the copy set its metadata through the overlay) and its time
 * is the source's; a file copied into an existing directory (`COPY a b /app/`)
 * would need both its directory copied up and that directory's time to be
 * the moment of the copy, which a link after the fact cannot give. Should a
 * link fail (the donor pruned meanwhile), the file is copied from its source.
 */
export class FileReuse {
  private readonly deferred: Array<{ rel: string; src: string; uid: number; gid: number; mode: number; atime: Date; mtime: Date }> = [];
  private readonly a = Buffer.allocUnsafe(COMPARE_CHUNK + 1);
  private readonly b = Buffer.allocUnsafe(COMPARE_CHUNK + 1);
  /** Files taken and files written after all (a link failed). */
  taken = 0;
  copiedAfterAll = 0;

  constructor(
    /** The destination root the copier writes through (the mounted snapshot). */
    private readonly rootDir: string,
    /** The donor snapshot's own directory. */
    private readonly donorDir: string,
  ) {}

  /**
   * Whether the file `src` (stat `st`) that the copier would write at `dest`
   * (under the root, not existing) with these owner, mode and times can come
   * from the donor instead; if so it is recorded and the copier skips it.
   */
  offer(src: string, st: Stats, dest: string, meta: { uid: number; gid: number; mode: number; atime: Date; mtime: Date }): boolean {
    // Comparing reads both files; past ~1 MiB that costs more than the copy it saves (a new file is ~0.1 ms, its bytes ~1 ms per MiB).
    if (st.size > MAX_OFFER_BYTES) return false;
    const rel = path.relative(this.rootDir, dest);
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return false;
    let donor: Stats;
    try {
      donor = lstatSync(path.join(this.donorDir, rel));
    } catch {
      return false;
    }
    if (!donor.isFile() || donor.size !== st.size || donor.uid !== meta.uid || donor.gid !== meta.gid) return false;
    // mtimeMs is the kernel's nanoseconds as a float: compared at the millisecond the copy sets.
    if ((donor.mode & 0o7777) !== meta.mode || Math.round(donor.mtimeMs) !== meta.mtime.getTime()) return false;
    if (!sameBytes(src, path.join(this.donorDir, rel), st.size, this.a, this.b)) return false;
    this.deferred.push({ rel, src, ...meta });
    return true;
  }

  /** After the unmount: link every file taken into `upperDir` (the snapshot's own dir). */
  finish(upperDir: string): void {
    const parentTimes = new Map<string, { atime: Date; mtime: Date }>();
    for (const f of this.deferred) {
      const dest = path.join(upperDir, f.rel);
      const parent = path.dirname(dest);
      if (!parentTimes.has(parent)) {
        // The copier only offers files whose directory it copies (and so copies up): never missing.
        const pst = lstatSync(parent, { throwIfNoEntry: false });
        if (!pst?.isDirectory()) throw new Error(`internal: ${path.dirname(f.rel) || '/'} is not in the step's upper dir`);
        parentTimes.set(parent, { atime: pst.atime, mtime: pst.mtime });
      }
      try {
        linkSync(path.join(this.donorDir, f.rel), dest);
        this.taken++;
      } catch {
        // The donor went (pruned), or the name is taken: write the file as the copier would have.
        copyFileSync(f.src, dest, constants.COPYFILE_EXCL);
        lchownSync(dest, f.uid, f.gid);
        chmodSync(dest, f.mode);
        utimesSync(dest, f.atime, f.mtime);
        this.copiedAfterAll++;
      }
    }
    // A new name in a directory changes its mtime; the layer must hold the times the copy set.
    for (const [dir, t] of parentTimes) utimesSync(dir, t.atime, t.mtime);
  }

  get pending(): number {
    return this.deferred.length;
  }
}

// One byte short of the buffers: the last read of a file asks for one more.
const COMPARE_CHUNK = 256 * 1024 - 1;
const MAX_OFFER_BYTES = 1024 * 1024;

/**
 * Both files hold exactly `size` bytes, the same ones (reused buffers: fresh
 * ones cost page faults). The last read of each asks for one byte more, so a
 * file that grew since its stat shows without a read of its own: a short read
 * of a regular file is its end, and two syscalls less per file count when a
 * COPY offers thousands.
 */
function sameBytes(a: string, b: string, size: number, bufA: Buffer, bufB: Buffer): boolean {
  let fa: number | undefined;
  let fb: number | undefined;
  try {
    fa = openSync(a, constants.O_RDONLY | constants.O_NOFOLLOW);
    fb = openSync(b, constants.O_RDONLY | constants.O_NOFOLLOW);
    let left = size;
    for (;;) {
      const last = left < COMPARE_CHUNK;
      const want = last ? left : COMPARE_CHUNK;
      const ask = last ? left + 1 : COMPARE_CHUNK;
      const ra = readAtLeast(fa, bufA, want, ask);
      const rb = readAtLeast(fb, bufB, want, ask);
      if (last) return ra === left && rb === left && bufA.compare(bufB, 0, left, 0, left) === 0;
      if (ra !== want || rb !== want || bufA.compare(bufB, 0, want, 0, want) !== 0) return false;
      left -= want;
    }
  } catch {
    return false;
  } finally {
    if (fa !== undefined) closeSync(fa);
    if (fb !== undefined) closeSync(fb);
  }
}

/** Reads (at least once) until `need` bytes are in or the file ends, asking for up to `ask`; how many came. */
function readAtLeast(fd: number, buf: Buffer, need: number, ask: number): number {
  let got = 0;
  do {
    const n = readSync(fd, buf, got, ask - got, null);
    if (n === 0) break;
    got += n;
  } while (got < need);
  return got;
}

/**
 * Whether two upper dirs would give the same layer tar (layers/diff.ts: the
 * root itself is no entry): the same names, and for each the same type, mode,
 * owner and mtime (to the nanosecond), directories recursively, symlinks with
 * the same target, devices (whiteouts) with the same number, and regular
 * files the very same inode, so the same bytes: a file of `a` not linked from
 * `b` makes them differ, however equal its content. Xattrs and overlay's
 * opaque marks are not compared: the caller checks that neither tree has any.
 */
export function sameTree(a: string, b: string): boolean {
  const na = readdirSync(a).sort();
  const nb = readdirSync(b).sort();
  if (na.length !== nb.length || na.some((n, i) => n !== nb[i])) return false;
  return na.every((n) => sameEntry(path.join(a, n), path.join(b, n)));
}

function sameEntry(a: string, b: string): boolean {
  const sa = lstatSync(a, { bigint: true });
  const sb = lstatSync(b, { bigint: true });
  if (sa.mode !== sb.mode || sa.uid !== sb.uid || sa.gid !== sb.gid || sa.mtimeNs !== sb.mtimeNs) return false;
  if (sa.isFile()) return sa.ino === sb.ino && sa.dev === sb.dev;
  if (sa.isSymbolicLink()) return readlinkSync(a) === readlinkSync(b);
  if (sa.isCharacterDevice() || sa.isBlockDevice()) return sa.rdev === sb.rdev;
  if (sa.isDirectory()) return sameTree(a, b);
  return true;
}
