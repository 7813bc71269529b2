import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { parseFileMode } from '../../../core/file-mode.js';
import { PathMatcher } from '../../../core/ignore.js';
import { resolveInRoot } from '../../../core/safe-path.js';
import type { CopyAction } from '../../graph/index.js';
import { detectArchive, extractArchive } from './archive.js';
import { resolveParentsSources } from './parents.js';
import { resolveSources } from './sources.js';
import { TreeCopier } from './tree-copy.js';
import { FileOpError, createdTime, mkdirAllInRoot, type FileOpContext, type Owner } from './base.js';

const ROOT_OWNER: Owner = { uid: 0, gid: 0 };

/**
 * One COPY/ADD with Docker/BuildKit's rules: a directory source copies its
 * contents; a non-directory lands inside `dest` when `dest` ends in `/` or is
 * an existing directory, else it takes the name `dest`; several sources need a
 * directory destination; parents are created 0755 (owned by the --chown
 * target, else root). `dest` is resolved inside `rootDir`, following links only
 * within it.
 */
export async function copyAction(rootDir: string, action: CopyAction, ctx: FileOpContext, signal?: AbortSignal): Promise<void> {
  rootDir = path.resolve(rootDir);
  const srcRoot = ctx.sourceDir(action.src);
  const ignorePatterns = ctx.sourceExcludes(action.src);
  const kind = ctx.sourceKind?.(action.src) ?? (ignorePatterns.length > 0 || action.literal ? 'context' : 'rootfs');
  const owner = action.chown ? await ctx.resolveChown(action.chown) : kind === 'context' ? ROOT_OWNER : undefined;
  const chmod = action.chmod !== undefined ? parseFileMode(action.chmod) : undefined;
  const ignore = new PathMatcher(ignorePatterns);
  const exclude = new PathMatcher(action.excludes);

  const parentOwner = owner ?? ROOT_OWNER;
  const when = createdTime(ctx);
  const copier = new TreeCopier(rootDir, {
    ...(owner ? { owner } : {}),
    ...(chmod !== undefined ? { chmod } : {}),
    ignore,
    exclude,
    ...(ctx.sourceDateEpoch !== undefined ? { sourceDateEpoch: ctx.sourceDateEpoch } : {}),
    ...(signal ? { signal } : {}),
    ...(ctx.reuse ? { reuse: ctx.reuse } : {}),
  });
  const destHost = await resolveInRoot(rootDir, action.dest, true);
  // `dest` may be the root itself, which has no parent to create.
  const destParent = destHost === rootDir ? destHost : path.dirname(destHost);

  if (action.parents && !action.literal) {
    // Each source keeps its path below its base, so the destination is always a directory.
    const bases = await resolveParentsSources(srcRoot, action.paths, { ignore, exclude }, signal);
    if (bases.length === 0) return;
    await mkdirAllInRoot(rootDir, destParent, parentOwner, when);
    const dir = await copier.prepareDir(destHost);
    for (const b of bases) await copier.copyDirContents(b.host, await lstat(b.host), dir, b.rel, '', b.include);
    return;
  }

  const sources = await resolveSources(srcRoot, action.paths, action.literal === true, { ignore, exclude }, signal);
  const intoDir = action.dest.endsWith('/') || path.posix.resolve('/', action.dest) === '/';
  const destIsDir = (await lstat(destHost).catch(() => undefined))?.isDirectory() === true;
  if (sources.length > 1 && !intoDir && !destIsDir) {
    throw new FileOpError(
      `When using COPY with more than one source file, the destination must be a directory and end with a /: ${action.dest}`,
      action.dest,
    );
  }

  for (const src of sources) {
    signal?.throwIfAborted();
    const st = await lstat(src.host);
    if (st.isDirectory()) {
      await mkdirAllInRoot(rootDir, destParent, parentOwner, when);
      const dir = await copier.prepareDir(destHost);
      await copier.copyDirContents(src.host, st, dir, src.rel, src.excludeBase);
      continue;
    }
    const archive = ((action.add && !action.literal) || action.unpack) && st.isFile() ? await detectArchive(src.host, signal) : undefined;
    if (archive !== undefined) {
      // An archive always unpacks into `dest` as a directory, slash or not.
      await mkdirAllInRoot(rootDir, destHost, parentOwner, when);
      await extractArchive(src.host, destHost, action.chown ? owner : undefined, signal);
      continue;
    }
    const inside = intoDir || (await lstat(destHost).catch(() => undefined))?.isDirectory() === true;
    if (inside) {
      await mkdirAllInRoot(rootDir, destHost, parentOwner, when);
      await copier.copyNonDir(src.host, st, path.join(destHost, ctx.sourceFileName?.(action.src) ?? src.name));
    } else {
      await mkdirAllInRoot(rootDir, destParent, parentOwner, when);
      await copier.copyNonDir(src.host, st, destHost);
    }
  }
}
