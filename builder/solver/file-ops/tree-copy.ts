import {
  chmodSync,
  constants,
  copyFileSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  type Stats,
} from 'node:fs';
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { applyFileMode, type FileModeSpec } from '../../../core/file-mode.js';
import type { PathMatcher } from '../../../core/ignore.js';
import { resolveInRoot } from '../../../core/safe-path.js';
import { FileOpError, type Owner } from './base.js';
import type { FileReuse } from './reuse.js';
import { execFileAsync } from '../../../core/lazy-builtins.js';


export interface TreeOptions {
  /** Owner of everything copied; absent means each entry keeps its source owner. */
  readonly owner?: Owner;
  /** `--chmod`, applied to files and directories alike (BuildKit does). */
  readonly chmod?: FileModeSpec;
  /** `.dockerignore`, matched against paths relative to the source root. */
  readonly ignore: PathMatcher;
  /** `--exclude`, matched against paths relative to the source being copied. */
  readonly exclude: PathMatcher;
  /** SOURCE_DATE_EPOCH in seconds: later mtimes are clamped to it. */
  readonly sourceDateEpoch?: number;
  readonly signal?: AbortSignal;
  /** An earlier result of this copy whose identical files are linked rather than written (reuse.ts). */
  readonly reuse?: FileReuse;
}

/** Where a directory's contents go; `ensure` makes the destination dir exist (lazily for an ignored dir). */
interface DirTarget {
  ensure(): Promise<string>;
  /** True when the dir was made by this copy, so none of its names can be taken yet. */
  fresh: boolean;
}

/** Files above this size are copied with the async API so a big copy does not hold the event loop. */
const SYNC_COPY_MAX = 1 << 20;
/** Entries handled between two yields to the event loop. */
const YIELD_EVERY = 256;

/**
 * Copies entries from a source tree into the destination root. Every write
 * goes to a name inside a directory that is real and inside the root: an
 * existing entry in the way is removed (never written through), and a
 * symlinked directory being merged into is resolved inside the root first.
 * Hardlinks within one copier stay hardlinks.
 *
 * Metadata calls and small-file copies are synchronous on purpose: with the
 * async API each call pays a thread-pool round trip, which made 5,000 small
 * files take 20x longer than `cp -a`. The walk yields to the event loop
 * every few hundred entries instead.
 */
export class TreeCopier {
  private readonly links = new Map<string, string>();
  private sinceYield = 0;

  constructor(
    private readonly rootDir: string,
    private readonly opts: TreeOptions,
  ) {}

  /**
   * Make `destHost` a real directory to copy into: an existing directory (or a
   * link to one inside the root) is merged into, anything else is replaced.
   */
  async prepareDir(destHost: string): Promise<string> {
    return (await this.prepare(destHost)).dir;
  }

  private async prepare(destHost: string): Promise<{ dir: string; fresh: boolean }> {
    const st = lstatOrUndefined(destHost);
    if (st?.isDirectory()) return { dir: destHost, fresh: false };
    if (st?.isSymbolicLink()) {
      const resolved = await resolveInRoot(this.rootDir, this.inImage(destHost), true);
      if (lstatOrUndefined(resolved)?.isDirectory()) return { dir: resolved, fresh: false };
    }
    if (st) removeExistingSync(destHost, st);
    // Owner-only until the final metadata lands after the contents.
    mkdirSync(destHost, 0o700);
    return { dir: destHost, fresh: true };
  }

  /**
   * Copy the contents of directory `srcHost` into `destDir` (prepared), then
   * give `destDir` the source dir's metadata. With `include` (COPY --parents),
   * only what it matches below the source is copied, with the directories on
   * its way, which are made only when something under them is.
   */
  async copyDirContents(srcHost: string, srcStat: Stats, destDir: string, rel: string, excludeBase: string, include?: PathMatcher): Promise<void> {
    await this.copyChildren(srcHost, { ensure: async () => destDir, fresh: false }, rel, excludeBase, include);
    if (path.resolve(destDir) !== path.resolve(this.rootDir)) this.applyMeta(destDir, srcStat);
  }

  /** `include`: what must still match for an entry to be copied; undefined once a parent matched. */
  private async copyChildren(srcDir: string, target: DirTarget, rel: string, excludeBase: string, include: PathMatcher | undefined): Promise<void> {
    const names = readdirSync(srcDir).sort();
    const filtering = !this.opts.ignore.empty || !this.opts.exclude.empty;
    for (const name of names) {
      if (++this.sinceYield >= YIELD_EVERY) {
        this.sinceYield = 0;
        await new Promise<void>((r) => setImmediate(r));
      }
      this.opts.signal?.throwIfAborted();
      const src = path.join(srcDir, name);
      const st = lstatSync(src);
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const childEx = excludeBase === '' ? name : `${excludeBase}/${name}`;
      const ignored = filtering && this.opts.ignore.matches(childRel);
      const excluded = filtering && this.opts.exclude.matches(childEx);
      const pending = include && !include.matches(childEx) ? include : undefined;
      if (st.isDirectory()) {
        if ((ignored && !this.opts.ignore.mayIncludeUnder(childRel)) || (excluded && !this.opts.exclude.mayIncludeUnder(childEx))) continue;
        if (pending && !pending.mayMatchUnder(childEx)) continue;
        await this.copyDir(src, st, target, name, childRel, childEx, ignored || excluded || pending !== undefined, pending);
      } else if (!ignored && !excluded && !pending) {
        const dir = await target.ensure();
        // Its directory gets its metadata set after its contents (or is the root): it is in the
        // upper dir by then, and its time is the copy's, so a file linked in later changes nothing.
        await this.copyEntry(src, st, path.join(dir, name), target.fresh, true);
      }
    }
  }

  /** A child dir: created up front (so empty dirs copy), or only once something under it is included. */
  private async copyDir(src: string, st: Stats, parent: DirTarget, name: string, rel: string, ex: string, lazy: boolean, include: PathMatcher | undefined): Promise<void> {
    let created: Promise<string> | undefined;
    const target: DirTarget = {
      fresh: false,
      ensure: () =>
        (created ??= parent.ensure().then(async (p) => {
          const made = parent.fresh ? (mkdirSync(path.join(p, name), 0o700), { dir: path.join(p, name), fresh: true }) : await this.prepare(path.join(p, name));
          target.fresh = made.fresh;
          return made.dir;
        })),
    };
    if (!lazy) await target.ensure();
    await this.copyChildren(src, target, rel, ex, include);
    if (created) this.applyMeta(await created, st);
  }

  /** Copy one non-directory entry to `dest`, replacing whatever is there. FIFOs and devices are recreated, never opened. */
  async copyNonDir(src: string, st: Stats, dest: string): Promise<void> {
    // Into a directory that may only be in a lower layer, whose time the creation of `dest`
    // changes: a file linked in after the unmount could do neither, so it is always written.
    await this.copyEntry(src, st, dest, false, false);
  }

  private async copyEntry(src: string, st: Stats, dest: string, fresh: boolean, mayReuse: boolean): Promise<void> {
    const key = `${st.dev}:${st.ino}`;
    const prior = st.nlink > 1 ? this.links.get(key) : undefined;
    const first = prior === dest ? undefined : prior;
    const old = fresh ? undefined : lstatOrUndefined(dest);
    if (old) removeExistingSync(dest, old);
    // Only a name nothing held, and a file no other name of this copy links to.
    if (mayReuse && this.opts.reuse && !old && first === undefined && st.isFile() && st.nlink === 1 && this.opts.reuse.offer(src, st, dest, this.targetMeta(st))) return;
    if (first !== undefined) {
      linkSync(first, dest);
      return;
    }
    if (st.isFile()) {
      // EXCL: the name was just cleared; a link planted in between makes this fail rather than be followed.
      if (st.size > SYNC_COPY_MAX) await copyFile(src, dest, constants.COPYFILE_EXCL);
      else copyFileSync(src, dest, constants.COPYFILE_EXCL);
    } else if (st.isSymbolicLink()) {
      symlinkSync(readlinkSync(src), dest);
    } else if (st.isFIFO()) {
      await mknod(dest, ['p']);
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      await mknod(dest, [st.isCharacterDevice() ? 'c' : 'b', String(major(st.rdev)), String(minor(st.rdev))]);
    } else {
      // Sockets cannot be copied meaningfully; BuildKit skips them too.
      return;
    }
    this.applyMeta(dest, st);
    if (st.nlink > 1) this.links.set(key, dest);
  }

  private applyMeta(dest: string, st: Stats): void {
    const m = this.targetMeta(st);
    lchownSync(dest, m.uid, m.gid);
    if (st.isSymbolicLink()) {
      lutimesSync(dest, m.atime, m.mtime);
      return;
    }
    // After chown: chown clears setuid/setgid.
    chmodSync(dest, m.mode);
    utimesSync(dest, m.atime, m.mtime);
  }

  /** What a copy of `st` gets: owner, permission bits and times. */
  private targetMeta(st: Stats): { uid: number; gid: number; mode: number; atime: Date; mtime: Date } {
    const owner = this.opts.owner ?? { uid: st.uid, gid: st.gid };
    const epoch = this.opts.sourceDateEpoch;
    const clamp = (d: Date) => (epoch !== undefined && d.getTime() > epoch * 1000 ? new Date(epoch * 1000) : d);
    // A plain octal --chmod (<= 0777) replaces the permission bits and keeps the source's
    // special bits, as BuildKit's copier does; a symbolic one changes the source's mode.
    const spec = this.opts.chmod;
    let mode = st.mode & 0o7777;
    if (spec?.kind === 'octal') mode = spec.mode > 0o777 ? spec.mode : (st.mode & 0o7000) | spec.mode;
    else if (spec) mode = applyFileMode(spec, st.mode, st.isDirectory());
    return { uid: owner.uid, gid: owner.gid, mode, atime: clamp(st.atime), mtime: clamp(st.mtime) };
  }

  private inImage(hostPath: string): string {
    return `/${path.relative(this.rootDir, hostPath)}`;
  }
}

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

function removeExistingSync(p: string, st: Stats): void {
  if (st.isDirectory()) rmSync(p, { recursive: true, force: true });
  else unlinkSync(p);
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
