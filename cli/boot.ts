#!/usr/bin/env node
/**
 * The `buildlite` bin. Starting Node and compiling the ~1.6 MB CLI bundle is
 * a large part of a short command (a cached or incremental build, a re-push),
 * so this runs the command's bundle (cli.cjs, or one of its own such as
 * cli-push.cjs, beside this file) through a V8 code cache:
 * the first run of a command compiles as usual and saves, at exit, the bytecode
 * of everything it ran; later runs of that command skip parsing and compiling
 * (measured: an incremental rebuild 0.41 -> 0.375 s). It is what Node 22's
 * `module.enableCompileCache()` does, for Node 20. A cache that is missing,
 * unsafe, rejected by V8 or unwritable only means running without it.
 *
 * The cache is bytecode V8 will execute, so it lives only in a directory of
 * the user's own (mode 0700, owned by them, not group- or world-writable), and
 * its name carries the bundle's content hash: V8 itself checks only the
 * source's length.
 */
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { isAscii } from 'node:buffer';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { CODE_ID_KEY } from './code-id.js';

interface BundleFile {
  /** Beside this file. */
  readonly file: string;
  /** A prefix of its sha256. */
  readonly id: string;
}

/**
 * Set by scripts/bundle.mjs: the whole CLI, and the commands bundled on their
 * own (a re-push is mostly start-up, and `push` needs a tenth of the code).
 */
declare const BUNDLES: { readonly all: BundleFile; readonly commands: Readonly<Record<string, BundleFile>> };

/** ~0.2-0.7 MB each; about four versions' worth of commands. */
const MAX_CACHE_FILES = 48;
/** Runs at least this long (s) may replace an accepted cache (serializing one costs 2-5 ms)... */
const GROW_AFTER_S = 2;
/** ...when what they compiled is this much bigger. */
const GROW_BY = 1.1;

interface CacheFile {
  readonly dir: string;
  readonly file: string;
}

const here = path.dirname(fileURLToPath(import.meta.url));
const arg = process.argv[2] ?? '';
const chosen = Object.hasOwn(BUNDLES.commands, arg) ? BUNDLES.commands[arg]! : BUNDLES.all;
// What the builder keeps of the code's own work (Dockerfile parses) is only good for this code.
Object.defineProperty(globalThis, CODE_ID_KEY, { value: chosen.id });
const bundle = path.join(here, chosen.file);
const cache = cacheFile();
const cached = cache ? readCache(cache) : undefined;
// The CommonJS wrapper on the bundle's first line keeps its line numbers; the sources are
// ESM, so strict (esbuild's own "use strict" sits below its banner, where it is no directive).
const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {'use strict';${bundleText()}\n})`, {
  filename: bundle,
  ...(cached ? { cachedData: cached } : {}),
});
if (cache && !process.argv.slice(2).some((a) => a === '--help' || a === '-h')) {
  // At exit, so the cache holds the functions this command compiled lazily as
  // it ran; only after a successful run, which went through the command's work.
  // A cache V8 accepted is kept, unless a long run (a cold build, one that ran
  // steps) compiled much more than it holds: the first build may have been a
  // tiny one, and a thin cache left every later build ~30 ms slower than a
  // full one (the bench's warm builds, after a test run made it).
  process.once('exit', (code) => {
    if (code !== 0) return;
    if (!cached || script.cachedDataRejected) saveCache(cache, script.createCachedData());
    else if (process.uptime() >= GROW_AFTER_S) {
      const data = script.createCachedData();
      if (data.length > cached.length * GROW_BY) saveCache(cache, data);
    }
  });
}
const mod = { exports: {} };
(script.runInThisContext() as (...args: unknown[]) => void).call(mod.exports, mod.exports, createRequire(bundle), mod, bundle, here);

/**
 * The bundle as text. scripts/bundle.mjs writes it in ASCII, which read as
 * one-byte (latin1) text skips UTF-8 decoding of ~1.5 MB, a tenth of a short
 * command's instructions; any other byte means decoding it as UTF-8.
 */
function bundleText(): string {
  const bytes = readFileSync(bundle);
  return isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
}

/** One cache per command: each compiles different functions. */
function cacheFile(): CacheFile | undefined {
  if (process.env['BUILDLITE_NO_COMPILE_CACHE']) return undefined;
  const home = os.homedir();
  const base = process.env['XDG_CACHE_HOME'] || (home ? path.join(home, '.cache') : '');
  if (!path.isAbsolute(base)) return undefined;
  const command = /^[a-z][a-z-]{0,19}$/.test(arg) ? `${arg}${buildMode()}` : 'default';
  const dir = path.join(base, 'buildlite', 'compile-cache');
  return { dir, file: path.join(dir, `${chosen.id}-${process.version}-${process.arch}-${command}.bin`) };
}

/**
 * `build` runs three different programs: a local build, a client of a build
 * service, and `--check` (the Dockerfile checks alone). Each gets a cache of
 * its own; under one name the first to run filled it, and a local build on a
 * remote build's cache compiled most of itself anew on every run (~30 ms).
 * Read from argv as the command's flags are (a wrong guess only picks a
 * thinner cache).
 */
function buildMode(): string {
  if (arg !== 'build') return '';
  const rest = process.argv.slice(3);
  if (rest.includes('--check')) return '-check';
  const at = rest.findIndex((a) => a === '--server' || a.startsWith('--server='));
  const server = at >= 0 ? (rest[at] === '--server' ? rest[at + 1] : rest[at]!.slice('--server='.length)) : process.env['BUILDLITE_SERVER'];
  return server ? '-remote' : '';
}

function ownedByUs(p: string, wantDir: boolean): boolean {
  const st = lstatSync(p, { throwIfNoEntry: false });
  if (!st || (wantDir ? !st.isDirectory() : !st.isFile())) return false;
  const uid = process.getuid?.();
  return (uid === undefined || st.uid === uid) && (st.mode & 0o022) === 0;
}

function readCache(c: CacheFile): Buffer | undefined {
  try {
    return ownedByUs(c.dir, true) && ownedByUs(c.file, false) ? readFileSync(c.file) : undefined;
  } catch {
    return undefined;
  }
}

function saveCache(c: CacheFile, data: Buffer): void {
  try {
    mkdirSync(c.dir, { recursive: true, mode: 0o700 });
    if (!ownedByUs(c.dir, true)) return;
    const tmp = `${c.file}.${process.pid}.tmp`;
    writeFileSync(tmp, data, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    // Atomic: a concurrent run reads the old file or the new one, never half of one.
    renameSync(tmp, c.file);
    // Caches of an older bundle or Node stay until the newest MAX_CACHE_FILES push
    // them out: deleting every other bundle's at once would make two installed
    // versions, used in turn, throw each other's caches away on every run.
    const files = readdirSync(c.dir)
      .filter((name) => name.endsWith('.bin'))
      .map((name) => ({ file: path.join(c.dir, name), mtime: lstatSync(path.join(c.dir, name)).mtimeMs }))
      .sort((a, b) => b.mtime - a.mtime);
    for (const old of files.slice(MAX_CACHE_FILES)) unlinkSync(old.file);
  } catch {
    // Running without a cache next time is fine.
  }
}
