import { execFile } from 'node:child_process';
import { constants, type Stats } from 'node:fs';
import { chmod, copyFile, lchown, link, lstat, lutimes, mkdir, readdir, readlink, symlink, utimes } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { PathMatcher } from '../../core/ignore.js';
import { resolveInRoot } from '../../core/safe-path.js';
import { FileOpError, removeExisting, type Owner } from './file-op.js';

const execFileAsync = promisify(execFile);

export interface TreeOptions {
  /** Owner of everything copied; absent means each entry keeps its source owner. */
  readonly owner?: Owner;
  /** `--chmod` bits, applied to files and directories alike (BuildKit does). */
  readonly chmod?: number;
  /** `.dockerignore`, matched against paths relative to the source root. */
  readonly ignore: PathMatcher;
  /** `--exclude`, matched against paths relative to the source being copied. */
  readonly exclude: PathMatcher;
  /** SOURCE_DATE_EPOCH in seconds: later mtimes are clamped to it. */
  readonly sourceDateEpoch?: number;
  readonly signal?: AbortSignal;
}

/** Where a directory's contents go; `ensure` makes the destination dir exist (lazily for an ignored dir). */
interface DirTarget {
  ensure(): Promise<string>;
}

/**
 * Copies entries from a source tree into the destination root. Every write
 * goes to a name inside a directory that is real and inside the root: an
 * existing entry in the way is removed (never written through), and a
 * symlinked directory being merged into is resolved inside the root first.
 * Hardlinks within one copier stay hardlinks.
 */
export class TreeCopier {
  private readonly links = new Map<string, string>();

  constructor(
    private readonly rootDir: string,
    private readonly opts: TreeOptions,
  ) {}

  /**
   * Make `destHost` a real directory to copy into: an existing directory (or a
   * link to one inside the root) is merged into, anything else is replaced.
   */
  async prepareDir(destHost: string): Promise<string> {
    const st = await lstat(destHost).catch(() => undefined);
    if (st?.isDirectory()) return destHost;
    if (st?.isSymbolicLink()) {
      const resolved = await resolveInRoot(this.rootDir, this.inImage(destHost), true);
      const rst = await lstat(resolved).catch(() => undefined);
      if (rst?.isDirectory()) return resolved;
    }
    if (st) await removeExisting(destHost);
    // Owner-only until the final metadata lands after the contents.
    await mkdir(destHost, 0o700);
    return destHost;
  }

  /** Copy the contents of directory `srcHost` into `destDir` (prepared), then give `destDir` the source dir's metadata. */
  async copyDirContents(srcHost: string, srcStat: Stats, destDir: string, rel: string, excludeBase: string): Promise<void> {
    await this.copyChildren(srcHost, { ensure: async () => destDir }, rel, excludeBase);
    if (path.resolve(destDir) !== path.resolve(this.rootDir)) await this.applyMeta(destDir, srcStat);
  }

  private async copyChildren(srcDir: string, target: DirTarget, rel: string, excludeBase: string): Promise<void> {
    const names = await readdir(srcDir);
    names.sort();
    for (const name of names) {
      this.opts.signal?.throwIfAborted();
      const src = path.join(srcDir, name);
      const st = await lstat(src);
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const childEx = excludeBase === '' ? name : `${excludeBase}/${name}`;
      const ignored = this.opts.ignore.matches(childRel);
      const excluded = this.opts.exclude.matches(childEx);
      if (st.isDirectory()) {
        if ((ignored && !this.opts.ignore.mayIncludeUnder(childRel)) || (excluded && !this.opts.exclude.mayIncludeUnder(childEx))) continue;
        await this.copyDir(src, st, target, name, childRel, childEx, ignored || excluded);
      } else if (!ignored && !excluded) {
        await this.copyNonDir(src, st, path.join(await target.ensure(), name));
      }
    }
  }

  /** A child dir: created up front (so empty dirs copy), or only once something under it is included. */
  private async copyDir(src: string, st: Stats, parent: DirTarget, name: string, rel: string, ex: string, lazy: boolean): Promise<void> {
    let created: Promise<string> | undefined;
    const target: DirTarget = {
      ensure: () => (created ??= parent.ensure().then((p) => this.prepareDir(path.join(p, name)))),
    };
    if (!lazy) await target.ensure();
    await this.copyChildren(src, target, rel, ex);
    if (created) await this.applyMeta(await created, st);
  }

  /** Copy one non-directory entry to `dest`, replacing whatever is there. FIFOs and devices are recreated, never opened. */
  async copyNonDir(src: string, st: Stats, dest: string): Promise<void> {
    const key = `${st.dev}:${st.ino}`;
    const prior = st.nlink > 1 ? this.links.get(key) : undefined;
    const first = prior === dest ? undefined : prior;
    await removeExisting(dest);
    if (first !== undefined) {
      await link(first, dest);
      return;
    }
    if (st.isFile()) {
      // EXCL: the name was just cleared; a link planted in between makes this fail rather than be followed.
      await copyFile(src, dest, constants.COPYFILE_EXCL);
    } else if (st.isSymbolicLink()) {
      await symlink(await readlink(src), dest);
    } else if (st.isFIFO()) {
      await mknod(dest, ['p']);
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      await mknod(dest, [st.isCharacterDevice() ? 'c' : 'b', String(major(st.rdev)), String(minor(st.rdev))]);
    } else {
      // Sockets cannot be copied meaningfully; BuildKit skips them too.
      return;
    }
    await this.applyMeta(dest, st);
    if (st.nlink > 1) this.links.set(key, dest);
  }

  private async applyMeta(dest: string, st: Stats): Promise<void> {
    const owner = this.opts.owner ?? { uid: st.uid, gid: st.gid };
    await lchown(dest, owner.uid, owner.gid);
    const epoch = this.opts.sourceDateEpoch;
    const clamp = (d: Date) => (epoch !== undefined && d.getTime() > epoch * 1000 ? new Date(epoch * 1000) : d);
    if (st.isSymbolicLink()) {
      await lutimes(dest, clamp(st.atime), clamp(st.mtime));
      return;
    }
    // After chown: chown clears setuid/setgid. A plain --chmod (<= 0777) replaces the
    // permission bits and keeps the source's special bits, as BuildKit's copier does.
    const chmodBits = this.opts.chmod;
    const mode = chmodBits === undefined ? st.mode & 0o7777 : chmodBits > 0o777 ? chmodBits : (st.mode & 0o7000) | chmodBits;
    await chmod(dest, mode);
    await utimes(dest, clamp(st.atime), clamp(st.mtime));
  }

  private inImage(hostPath: string): string {
    return `/${path.relative(this.rootDir, hostPath)}`;
  }
}

/** glibc's gnu_dev_major/minor on a 64-bit dev_t. */
function major(rdev: number): number {
  const hi = Math.floor(rdev / 2 ** 32);
  const lo = rdev >>> 0;
  return ((lo >>> 8) & 0xfff) | ((hi & 0xfffff000) >>> 0);
}

function minor(rdev: number): number {
  const hi = Math.floor(rdev / 2 ** 32);
  const lo = rdev >>> 0;
  return ((lo & 0xff) | ((((lo >>> 12) | ((hi & 0xfff) << 20)) & 0xffffff00) >>> 0)) >>> 0;
}

/** Node has no mknod(2); the coreutils tool makes the node without opening it. */
async function mknod(dest: string, args: string[]): Promise<void> {
  try {
    await execFileAsync('mknod', ['-m', '0600', '--', dest, ...args]);
  } catch (err) {
    throw new FileOpError(`cannot create special file ${dest}: ${(err as Error).message}`, dest, 'INTERNAL', { cause: err });
  }
}
