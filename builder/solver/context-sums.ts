import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import { mkdir, open, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { digestFromHash, type Digest } from '../../core/digest.js';
import { BuildliteError, type ErrorCode } from '../../core/errors.js';
import { PathMatcher } from '../../core/ignore.js';
import { resolveParentsSources, resolveSources } from './file-ops/index.js';

export interface ContextHasherOptions {
  /** Called with the context-relative path each time file content is actually read (tests count cache misses). */
  readonly onRead?: (relPath: string) => void;
  /** Most stat-cache entries kept on disk; the oldest go first. */
  readonly maxEntries?: number;
}

const DEFAULTS = {
  // ~100 bytes an entry: 200k entries is ~20 MiB on disk, enough for a few large monorepo contexts.
  maxEntries: 200_000,
} as const;

const CACHE_FILE = 'context-stat-cache.json';
const CACHE_VERSION = 1;
/** 1 MiB reads: large files hash at disk speed without many small syscalls. */
const READ_CHUNK = 1 << 20;

/**
 * Content checksums of what a COPY/ADD selects from the build context
 * (DESIGN invariant 2: paths, types, modes, bytes and link targets; never
 * mtime, never owners since context files become 0:0). A persistent stat
 * cache maps (path, dev, inode, size, mtime ns, mode) to the content hash, so
 * a warm rebuild reads no unchanged file. Links are never followed out of the
 * context, and FIFOs and devices are never opened.
 */
export class ContextHasher {
  private cache?: Map<string, string>;
  private loading?: Promise<Map<string, string>>;
  private dirty = false;
  private saving: Promise<void> = Promise.resolve();
  private readonly maxEntries: number;

  constructor(
    private readonly stateDir: string,
    private readonly options: ContextHasherOptions = {},
  ) {
    this.maxEntries = options.maxEntries ?? DEFAULTS.maxEntries;
  }

  /** A digest of exactly the files `COPY <paths>` with these filters (and `--parents`) would copy from `contextDir`. */
  async checksumForCopy(
    contextDir: string,
    paths: readonly string[],
    opts: { excludes: readonly string[]; ignore: readonly string[]; parents?: boolean },
    signal?: AbortSignal,
  ): Promise<Digest> {
    const cache = await this.load();
    const root = path.resolve(contextDir);
    const ignore = new PathMatcher(opts.ignore);
    const exclude = new PathMatcher(opts.excludes);
    const walker = new SelectionWalker(ignore, exclude, cache, this.options.onRead, () => {
      this.dirty = true;
    });
    const records: Rec[] = ['buildlite.copy-selection.v1\n'];
    if (opts.parents) {
      // Paths below each base are the layout in the image: the walk records them, matched by the pattern.
      for (const [i, b] of (await resolveParentsSources(root, paths, { ignore, exclude }, signal)).entries()) {
        records.push(`parents\0${i}\0${b.pattern}\n`);
        walker.entry(records, b.host, b.rel, '', signal, b.include);
      }
    } else {
      for (const [i, src] of (await resolveSources(root, paths, false, { ignore, exclude }, signal)).entries()) {
        signal?.throwIfAborted();
        records.push(`source\0${i}\0${src.name}\n`);
        walker.entry(records, src.host, src.rel, src.excludeBase, signal);
      }
    }
    // Records are fed in walk order; only cache misses are promises, read a few at a time.
    const h = createHash('sha256');
    for (const r of records) h.update(typeof r === 'string' ? r : await r);
    await this.save();
    return digestFromHash(h);
  }

  private async load(): Promise<Map<string, string>> {
    if (this.cache) return this.cache;
    this.loading ??= (async () => {
      const map = new Map<string, string>();
      try {
        const doc = JSON.parse(await readFile(path.join(this.stateDir, CACHE_FILE), 'utf8')) as { version?: number; entries?: unknown };
        if (doc.version === CACHE_VERSION && Array.isArray(doc.entries)) {
          for (const e of doc.entries) {
            if (Array.isArray(e) && typeof e[0] === 'string' && typeof e[1] === 'string' && /^[a-f0-9]{64}$/.test(e[1])) map.set(e[0], e[1]);
          }
        }
      } catch {
        // Missing or corrupt: the cache is only an accelerator; start empty.
      }
      this.cache = map;
      return map;
    })();
    return this.loading;
  }

  /** Write the cache atomically (temp name, then rename); concurrent callers queue behind one another. */
  private save(): Promise<void> {
    this.saving = this.saving.then(async () => {
      if (!this.dirty || !this.cache) return;
      this.dirty = false;
      const cache = this.cache;
      while (cache.size > this.maxEntries) cache.delete(cache.keys().next().value as string);
      await mkdir(this.stateDir, { recursive: true });
      const file = path.join(this.stateDir, CACHE_FILE);
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify({ version: CACHE_VERSION, entries: [...cache] }));
      await rename(tmp, file);
    });
    return this.saving;
  }
}

/** A context file changed type while it was being hashed. */
export class ContextChangedError extends BuildliteError {
  readonly code: ErrorCode = 'INVALID_ARGUMENT';
  constructor(readonly relPath: string) {
    super(`context file ${JSON.stringify(relPath)} changed while it was being read`);
  }
}

/** One line of the selection's pre-image; a promise while file content is being read. */
type Rec = string | Promise<string>;

/** Reads in flight at once on a cold context: enough to hide latency, few enough to keep fds and memory small. */
const MAX_READS = 16;
/** Files up to this size are hashed synchronously (see readSmallSync). */
const SYNC_READ_MAX = 256 * 1024;

/**
 * Walks one selection with the same include rules as the copier. Metadata
 * calls are synchronous on purpose: for thousands of small files the thread
 * pool round trip of the async API costs more than the stat itself, and a warm
 * walk then makes no promise per file.
 */
class SelectionWalker {
  private readonly links = new Map<string, string>();
  private reading = 0;
  private small?: Buffer;
  private readonly waiters: Array<() => void> = [];

  constructor(
    private readonly ignore: PathMatcher,
    private readonly exclude: PathMatcher,
    private readonly cache: Map<string, string>,
    private readonly onRead: ((rel: string) => void) | undefined,
    private readonly markDirty: () => void,
  ) {}

  /** Record a top-level source: a directory with what the copier takes from it, or one entry. */
  entry(out: Rec[], host: string, rel: string, exRel: string, signal?: AbortSignal, include?: PathMatcher): void {
    const st = lstatSync(host, { bigint: true });
    if (st.isDirectory()) this.dir(out, host, st, rel, exRel, '', false, include, signal);
    else out.push(this.leaf(host, rel, '', st));
  }

  /**
   * A lazy dir (excluded, but with re-included paths below, or on the way to a
   * --parents match) is recorded only if something under it is. `include`:
   * what must still match, as the copier reads it.
   */
  private dir(out: Rec[], host: string, st: BigIntStats, rel: string, exRel: string, outRel: string, lazy: boolean, include: PathMatcher | undefined, signal?: AbortSignal): void {
    const mark = out.length;
    out.push(`dir\0${outRel}\0${(Number(st.mode) & 0o7777).toString(8)}\n`);
    const filtering = !this.ignore.empty || !this.exclude.empty;
    for (const name of readdirSync(host).sort()) {
      signal?.throwIfAborted();
      const cRel = rel === '' ? name : `${rel}/${name}`;
      const cEx = exRel === '' ? name : `${exRel}/${name}`;
      const cOut = outRel === '' ? name : `${outRel}/${name}`;
      const cHost = path.join(host, name);
      const cst = lstatSync(cHost, { bigint: true });
      const pending = include && !include.matches(cEx) ? include : undefined;
      if (pending && !(cst.isDirectory() && pending.mayMatchUnder(cEx))) continue;
      let cLazy = pending !== undefined;
      if (filtering) {
        const ignored = this.ignore.matches(cRel);
        const excluded = this.exclude.matches(cEx);
        if (cst.isDirectory()) {
          if ((ignored && !this.ignore.mayIncludeUnder(cRel)) || (excluded && !this.exclude.mayIncludeUnder(cEx))) continue;
          cLazy ||= ignored || excluded;
        } else if (ignored || excluded) {
          continue;
        }
      }
      if (cst.isDirectory()) this.dir(out, cHost, cst, cRel, cEx, cOut, cLazy, pending, signal);
      else out.push(this.leaf(cHost, cRel, cOut, cst));
    }
    if (lazy && out.length === mark + 1) out.length = mark;
  }

  /** The record of a non-directory; a promise only when file content must be read. */
  private leaf(host: string, rel: string, outRel: string, st: BigIntStats): Rec {
    const mode = (Number(st.mode) & 0o7777).toString(8);
    if (st.isSymbolicLink()) return `symlink\0${outRel}\0${readlinkSync(host)}\n`;
    if (st.isFile()) {
      if (st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        const first = this.links.get(key);
        if (first !== undefined) return `hardlink\0${outRel}\0${first}\n`;
        this.links.set(key, outRel);
      }
      const prefix = `file\0${outRel}\0${mode}\0`;
      const cacheKey = `${rel}\0${st.dev}\0${st.ino}\0${st.size}\0${st.mtimeNs}\0${st.mode}`;
      const hit = this.cache.get(cacheKey);
      if (hit !== undefined) return `${prefix}${hit}\n`;
      if (st.size <= BigInt(SYNC_READ_MAX)) {
        const hex = this.readSmallSync(host, rel, st);
        this.cache.set(cacheKey, hex);
        this.markDirty();
        return `${prefix}${hex}\n`;
      }
      const read = this.readHash(host, rel, st).then((hex) => {
        this.cache.set(cacheKey, hex);
        this.markDirty();
        return `${prefix}${hex}\n`;
      });
      // Awaited in order later; until then a failure must not count as unhandled.
      read.catch(() => {});
      return read;
    }
    // FIFOs, devices and sockets are recorded by type and device number, never opened.
    const kind = st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : 'socket';
    return `${kind}\0${outRel}\0${mode}\0${st.rdev}\n`;
  }

  /** Small files are read synchronously: one open/fstat/read/close costs less than a promise round trip per call. */
  private readSmallSync(host: string, rel: string, st: BigIntStats): string {
    this.onRead?.(rel);
    const fd = openSync(host, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    try {
      const now = fstatSync(fd, { bigint: true });
      if (!now.isFile() || now.ino !== st.ino) throw new ContextChangedError(rel);
      this.small ??= Buffer.allocUnsafe(SYNC_READ_MAX + 1);
      const hash = createHash('sha256');
      for (;;) {
        const n = readSync(fd, this.small, 0, this.small.length, null);
        if (n === 0) break;
        hash.update(this.small.subarray(0, n));
      }
      return hash.digest('hex');
    } finally {
      closeSync(fd);
    }
  }

  private async readHash(host: string, rel: string, st: BigIntStats): Promise<string> {
    while (this.reading >= MAX_READS) await new Promise<void>((r) => this.waiters.push(r));
    this.reading++;
    try {
      this.onRead?.(rel);
      const hash = createHash('sha256');
      // O_NOFOLLOW: a file swapped for a link after the lstat fails rather than being followed out.
      const fh = await open(host, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        const now = await fh.stat({ bigint: true });
        if (!now.isFile() || now.ino !== st.ino) throw new ContextChangedError(rel);
        // Sized to the file up to 1 MiB (plus one byte to see the end in one read), then reused per chunk.
        const buf = Buffer.allocUnsafe(Math.min(Number(now.size) + 1, READ_CHUNK));
        for (;;) {
          const { bytesRead } = await fh.read(buf, 0, buf.length, null);
          if (bytesRead === 0) break;
          hash.update(buf.subarray(0, bytesRead));
        }
      } finally {
        await fh.close();
      }
      return hash.digest('hex');
    } finally {
      this.reading--;
      this.waiters.shift()?.();
    }
  }
}
