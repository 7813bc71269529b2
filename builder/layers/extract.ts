import {
  chmodSync, closeSync, constants, fchmodSync, fchownSync, futimesSync, lchownSync, linkSync, lstatSync, lutimesSync,
  mkdirSync, openSync, rmSync, symlinkSync, writeSync, type Stats,
} from 'node:fs';
import { lstat, readdir, realpath, rm } from 'node:fs/promises';
import path from 'node:path';
import { isWithin, resolveInRoot, UnsafePathError } from '../../core/safe-path.js';
import { LimitExceededError } from '../../core/streams.js';
import { OPAQUE_MARKER, WHITEOUT_PREFIX } from './diff.js';
import { DirTimes } from './dir-times.js';
import { PathSet } from './path-set.js';
import type { TarEntry } from './tar-reader.js';
import { keepXattr, restoreXattrs } from './xattrs.js';
import { execFileAsync } from '../../core/lazy-builtins.js';


export interface ExtractLimits {
  /** Entries in one archive (default 1,000,000). */
  readonly maxEntries?: number;
  /** Path components of one name (default 256). */
  readonly maxDepth?: number;
  /** Bytes of one name or link target (default 4096, PATH_MAX). */
  readonly maxNameBytes?: number;
  /** Opaque-directory markers in one archive (default 100,000); each is remembered until the end. */
  readonly maxOpaqueDirs?: number;
}

export const EXTRACT_LIMIT_DEFAULTS = {
  // A Debian base layer has ~5,000 entries, a large node_modules layer ~300,000.
  maxEntries: 1_000_000,
  maxDepth: 256,
  maxNameBytes: 4096,
  maxOpaqueDirs: 100_000,
} satisfies Required<ExtractLimits>;

/** Directories whose resolved host path is cached; a cache, so bounded (it is cleared when full). */
const DIR_CACHE_MAX = 4096;
/** Entries whose xattrs wait for the end; past this they are restored in a batch. */
const PENDING_XATTRS_MAX = 1024;

export interface ExtractOptions {
  /** Interpret `.wh.` entries as OCI whiteouts (layers) or keep them as plain files (ADD archives). */
  readonly whiteouts: boolean;
  readonly limits?: ExtractLimits;
  readonly signal?: AbortSignal;
  /** Things skipped on purpose (device nodes, unsupported xattrs). */
  readonly onWarning?: (message: string) => void;
  /** ADD --chown: every entry gets this owner instead of the archive's (BuildKit's rule). */
  readonly owner?: { readonly uid: number; readonly gid: number };
  /**
   * The archive's root entry (`./`) gives the target its mode and mtime. For
   * build contexts: `COPY . dest` gives dest the context root's metadata, so
   * an uploaded context must carry it. Layers never set it (the root is the image's).
   */
  readonly rootMeta?: boolean;
}

/**
 * Applies tar entries under `root` (docs/security.md T3). Every name is cleaned and
 * refused when absolute or holding `..`; its parent is resolved inside root at
 * the moment of use (symlinks, also ones written by earlier entries or
 * layers, are followed only as if root were `/`); the final component is never
 * followed: an existing entry is removed first and files are created with
 * O_EXCL|O_NOFOLLOW. Hardlink targets resolve inside root too and must exist.
 *
 * Char and block devices are skipped with a warning: build steps do not need
 * them and creating device nodes from untrusted layers on the host is a risk.
 * FIFOs are made with `mknod`. Ownership, modes (after chown, which clears
 * setuid bits), xattrs (after chown, which clears security.capability) and
 * mtimes (directories last, as their children change them) are kept.
 */
/*
 * The per-entry work uses synchronous fs calls on purpose: a layer is
 * thousands of tiny operations, and an await per operation (a thread-pool
 * round trip each) made applying a 4,930-entry Debian layer 3x slower than
 * GNU tar. The event loop gets a turn at each entry, when the tar reader
 * yields the next one.
 */
export class Extractor {
  private root = '';
  /** Every path this archive wrote (and their parents): its whiteouts spare them. Bounded: see PathSet. */
  private readonly written = new PathSet();
  private readonly opaque = new Set<string>();
  private readonly dirTimes = new DirTimes();
  private readonly pendingXattrs = new Map<string, Map<string, Buffer>>();
  private readonly limits: Required<ExtractLimits>;
  /**
   * Directories this extraction resolved or made, rel → host path. Resolving a
   * parent inside root costs an lstat per path component; a layer of 5,000
   * entries pays it once per directory instead. Only this extractor writes the
   * target while it runs, so the cache stays true as long as every
   * replacement or removal of a path drops that path and what is under it.
   */
  private readonly dirs = new Map<string, string>();
  private entries = 0;
  private rootMeta: { mode: number; mtime: number } | undefined;

  constructor(
    private readonly rootDir: string,
    private readonly opts: ExtractOptions,
  ) {
    this.limits = { ...EXTRACT_LIMIT_DEFAULTS, ...(opts.limits ?? {}) };
  }

  async run(entries: AsyncIterable<TarEntry>): Promise<{ entries: number }> {
    this.root = await realpath(this.rootDir);
    try {
      for await (const e of entries) {
        this.opts.signal?.throwIfAborted();
        if (++this.entries > this.limits.maxEntries) throw new LimitExceededError(`archive has more than ${this.limits.maxEntries} entries (the limit on entries in one layer or archive)`);
        const owner = this.opts.owner;
        await this.entry(owner ? { ...e, uid: owner.uid, gid: owner.gid } : e);
      }
      await this.finish();
    } finally {
      this.dirTimes.dispose();
    }
    return { entries: this.entries };
  }

  private async entry(e: TarEntry): Promise<void> {
    const parts = this.clean(e.name);
    if (parts.length === 0) {
      // The root itself: its metadata belongs to the target, unless the caller asks for it.
      // Applied in finish(): a setgid root mode set now would be inherited by every directory made below it.
      if (this.opts.rootMeta && e.type === 'dir') this.rootMeta = { mode: e.mode & 0o7777, mtime: e.mtime };
      return;
    }
    const base = parts[parts.length - 1]!;
    const parentParts = parts.slice(0, -1);
    if (this.opts.whiteouts && base.startsWith(WHITEOUT_PREFIX)) {
      await this.whiteout(parentParts, base);
      return;
    }
    const rel = parts.join('/');
    const parent = await this.parentDir(parentParts);
    const target = path.join(parent, base);
    if (!isWithin(this.root, target) || target === this.root) throw new UnsafePathError(`path traversal: entry ${rel} resolves outside the root`);
    const existing = lstatOrUndefined(target);
    this.pendingXattrs.delete(target);
    if (existing && !(e.type === 'dir' && existing.isDirectory())) this.forget(rel);
    if (e.type === 'dir') {
      if (existing && !existing.isDirectory()) rmSync(target, { recursive: true, force: true });
      if (!existing?.isDirectory()) mkdirSync(target);
      lchownSync(target, e.uid, e.gid);
      chmodSync(target, e.mode & 0o7777);
      this.dirTimes.push(target, e.mtime);
      this.cacheDir(rel, target);
    } else {
      if (e.type === 'hardlink') {
        await this.hardlink(e, target, existing);
      } else {
        if (existing) rmSync(target, { recursive: true, force: true });
        if (e.type === 'file') await this.file(e, target);
        else if (e.type === 'symlink') symlinkSync(this.checkName(e.linkname, 'link target'), target);
        else if (e.type === 'fifo') await execFileAsync('mknod', ['-m', (e.mode & 0o7777).toString(8), '--', target, 'p']);
        else {
          this.opts.onWarning?.(`skipped ${e.type} device ${rel} (${e.devmajor}:${e.devminor}): device nodes are not created`);
          for await (const _ of e.body) void _;
          return;
        }
        if (e.type !== 'file') {
          lchownSync(target, e.uid, e.gid);
          if (e.type === 'fifo') chmodSync(target, e.mode & 0o7777);
          lutimesSync(target, e.mtime, e.mtime);
        }
      }
    }
    this.keepXattrs(e, target, rel);
    if (this.pendingXattrs.size >= PENDING_XATTRS_MAX) await this.flushXattrs();
    this.markWritten(parts);
  }

  private async file(e: TarEntry, target: string): Promise<void> {
    const fd = openSync(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      for await (const chunk of e.body) {
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
      }
      fchownSync(fd, e.uid, e.gid);
      fchmodSync(fd, e.mode & 0o7777);
      futimesSync(fd, e.mtime, e.mtime);
    } finally {
      closeSync(fd);
    }
  }

  private async hardlink(e: TarEntry, target: string, existing: Stats | undefined) {
    const what = `hardlink ${JSON.stringify(e.name.slice(0, 200))} → target`;
    const linkParts = this.clean(e.linkname, what);
    if (linkParts.length === 0) throw new UnsafePathError(`hardlink ${e.name} points at the root`);
    // Parents followed inside root, the last component not: a link to a symlink links the symlink.
    const source = await resolveInRoot(this.root, linkParts.join('/'), false);
    if (!isWithin(this.root, source)) throw new UnsafePathError(`path traversal: hardlink ${e.name} → ${e.linkname} resolves outside the root`);
    const st = lstatOrUndefined(source);
    if (!st) throw new UnsafePathError(`hardlink ${e.name} points at ${linkParts.join('/')}, which does not exist (yet)`);
    if (st.isDirectory()) throw new UnsafePathError(`hardlink ${e.name} points at a directory`);
    if (existing && existing.ino === st.ino && existing.dev === st.dev) return;
    if (existing) rmSync(target, { recursive: true, force: true });
    linkSync(source, target);
  }

  private async whiteout(parentParts: string[], base: string): Promise<void> {
    const parentRel = parentParts.join('/');
    if (base === OPAQUE_MARKER) {
      if (this.opaque.size >= this.limits.maxOpaqueDirs) throw new LimitExceededError(`archive has more than ${this.limits.maxOpaqueDirs} opaque-directory markers`);
      this.opaque.add(parentRel);
      this.markWritten(parentParts);
      return;
    }
    const name = base.slice(WHITEOUT_PREFIX.length);
    // `.wh..wh.*` other than the opaque marker are AUFS metadata (hardlink dirs): nothing to do.
    if (name.startsWith(WHITEOUT_PREFIX)) return;
    if (name === '' || name === '.' || name === '..') throw new UnsafePathError(`whiteout ${parentRel}/${base} names no file`);
    const rel = parentRel === '' ? name : `${parentRel}/${name}`;
    if (this.written.has(rel)) return; // a whiteout hides lower layers only, never this layer's own files
    const parent = await resolveInRoot(this.root, parentRel, true);
    const target = path.join(parent, name);
    if (!isWithin(this.root, target) || target === this.root) throw new UnsafePathError(`whiteout ${rel} resolves outside the target`);
    this.forget(rel);
    await rm(target, { recursive: true, force: true });
  }

  /** `rel` is being replaced or removed: no cached directory at or under it stays. */
  private forget(rel: string): void {
    const prefix = `${rel}/`;
    for (const k of this.dirs.keys()) if (k === rel || k.startsWith(prefix)) this.dirs.delete(k);
  }

  /** The host dir an entry goes in: resolved inside root, created (0755, root-owned) when missing. */
  private async parentDir(parentParts: string[]): Promise<string> {
    const rel = parentParts.join('/');
    const cached = this.dirs.get(rel);
    if (cached !== undefined) return cached;
    const parent = await resolveInRoot(this.root, rel, true);
    if (!isWithin(this.root, parent)) throw new UnsafePathError(`parent of entry resolves outside the target`);
    const st = lstatOrUndefined(parent);
    if (!st) mkdirSync(parent, { recursive: true, mode: 0o755 });
    else if (!st.isDirectory()) throw new UnsafePathError(`parent ${rel} of an entry is not a directory`);
    // Only a parent reached without a symlink is cached: its host path is then exactly root/rel.
    if (parent === path.join(this.root, ...parentParts)) this.cacheDir(rel, parent);
    return parent;
  }

  private keepXattrs(e: TarEntry, target: string, rel: string): void {
    if (e.xattrs.size === 0 || e.type === 'symlink' || e.type === 'hardlink') return;
    const kept = new Map<string, Buffer>();
    for (const [name, value] of e.xattrs) {
      if (keepXattr(name)) kept.set(name, value);
      else this.opts.onWarning?.(`dropped xattr ${name} of ${rel}`);
    }
    if (kept.size > 0) this.pendingXattrs.set(target, kept);
  }

  /** xattrs are set after ownership (chown clears security.capability), in batches: one tool run sets many. */
  private async flushXattrs(): Promise<void> {
    if (this.pendingXattrs.size === 0) return;
    await restoreXattrs(this.pendingXattrs);
    this.pendingXattrs.clear();
  }

  private cacheDir(rel: string, host: string): void {
    if (this.dirs.size >= DIR_CACHE_MAX) this.dirs.clear();
    this.dirs.set(rel, host);
  }

  private markWritten(parts: string[]): void {
    for (let i = 1; i <= parts.length; i++) this.written.add(parts.slice(0, i).join('/'));
  }

  private async finish(): Promise<void> {
    for (const dir of [...this.opaque].sort()) {
      const host = await resolveInRoot(this.root, dir, true);
      if (isWithin(this.root, host)) await this.pruneOpaque(host, dir);
    }
    await this.flushXattrs();
    if (this.rootMeta) {
      chmodSync(this.root, this.rootMeta.mode);
      this.dirTimes.push(this.root, this.rootMeta.mtime);
    }
    await this.dirTimes.apply();
  }

  /** Removes what lower layers put under an opaque dir, keeping what this layer wrote, at any depth. */
  private async pruneOpaque(host: string, rel: string): Promise<void> {
    const names = await readdir(host).catch(() => [] as string[]);
    for (const name of names) {
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const child = path.join(host, name);
      if (!this.written.has(childRel)) {
        await rm(child, { recursive: true, force: true });
      } else if ((await lstat(child)).isDirectory()) {
        await this.pruneOpaque(child, childRel);
      }
    }
  }

  /**
   * Entry name (or hardlink target, `what`) → components; refuses absolute
   * names, `..`, NUL and over-long or over-deep names, in the words people
   * search for (path traversal).
   */
  private clean(name: string, what = 'entry'): string[] {
    this.checkName(name, what);
    const shown = JSON.stringify(name.slice(0, 200));
    if (name.startsWith('/')) throw new UnsafePathError(`path traversal: ${what} ${shown} is an absolute path (tar entries must be relative to the root)`);
    const parts = name.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.includes('..')) throw new UnsafePathError(`path traversal: ${what} ${shown} climbs out of the root with ".."`);
    if (parts.length > this.limits.maxDepth) throw new LimitExceededError(`entry ${JSON.stringify(name.slice(0, 200))} is deeper than ${this.limits.maxDepth} components (the limit on path depth)`);
    return parts;
  }

  private checkName(name: string, what: string): string {
    const max = this.limits.maxNameBytes;
    if (Buffer.byteLength(name) > max) throw new LimitExceededError(`${what} ${JSON.stringify(name.slice(0, 100))}… is longer than ${max} bytes`);
    if (name.includes('\0')) throw new UnsafePathError(`${what} contains NUL`);
    return name;
  }
}

function lstatOrUndefined(p: string): Stats | undefined {
  return lstatSync(p, { throwIfNoEntry: false });
}
