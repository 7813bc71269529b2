import { lstat, mkdir, open, chown, chmod, utimes } from 'node:fs/promises';
import { constants } from 'node:fs';
import path from 'node:path';
import { resolveInRoot } from '../../../core/safe-path.js';
import type { FileAction, MkdirAction, MkfileAction } from '../../graph/index.js';
import { copyAction } from './copy.js';
import { createdTime, FileOpError, mkdirAllInRoot, removeExisting, ROOT_OWNER, type FileOpContext } from './base.js';

/** Apply a file vertex's actions, in order, to `rootDir`. */
export async function applyFileActions(
  rootDir: string,
  actions: readonly FileAction[],
  ctx: FileOpContext,
  signal?: AbortSignal,
): Promise<void> {
  rootDir = path.resolve(rootDir);
  for (const action of actions) {
    signal?.throwIfAborted();
    if (action.op === 'copy') await copyAction(rootDir, action, ctx, signal);
    else if (action.op === 'mkdir') await applyMkdir(rootDir, action, ctx);
    else await applyMkfile(rootDir, action, ctx);
  }
}

async function applyMkdir(rootDir: string, action: MkdirAction, ctx: FileOpContext): Promise<void> {
  const owner = action.chown ? await ctx.resolveChown(action.chown) : ROOT_OWNER;
  const host = await resolveInRoot(rootDir, action.path, true);
  const st = await lstat(host).catch(() => undefined);
  if (st?.isDirectory()) return;
  if (st) throw new FileOpError(`mkdir ${action.path}: a non-directory exists there`, action.path);
  const when = createdTime(ctx);
  await mkdirAllInRoot(rootDir, path.dirname(host), owner, when);
  await mkdir(host, action.mode & 0o7777);
  await chown(host, owner.uid, owner.gid);
  await chmod(host, action.mode & 0o7777);
  await utimes(host, when, when);
}

async function applyMkfile(rootDir: string, action: MkfileAction, ctx: FileOpContext): Promise<void> {
  const owner = action.chown ? await ctx.resolveChown(action.chown) : ROOT_OWNER;
  const hostParent = await resolveInRoot(rootDir, path.posix.dirname(path.posix.resolve('/', action.path)), true);
  const host = path.join(hostParent, path.posix.basename(path.posix.resolve('/', action.path)));
  const when = createdTime(ctx);
  await mkdirAllInRoot(rootDir, hostParent, ROOT_OWNER, when);
  await removeExisting(host);
  // O_EXCL|O_NOFOLLOW: the name was just cleared, so nothing may be followed or reused.
  const fh = await open(host, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    await fh.writeFile(action.data);
    await fh.chown(owner.uid, owner.gid);
    await fh.chmod(action.mode & 0o7777);
  } finally {
    await fh.close();
  }
  await utimes(host, when, when);
}
