import { lstat, mkdir, unlink, rm, chown, chmod, utimes } from 'node:fs/promises';
import path from 'node:path';
import { BuildliteError, type ErrorCode } from '../../../core/errors.js';
import type { UserSpec } from '../../graph/index.js';
import type { FileReuse } from './reuse.js';

// The shared vocabulary of file ops (context, errors, owners, directory helpers), kept apart
// from apply.ts so the copy modules can use it without an import cycle.

/**
 * What a file op needs from the solver. `rootDir` (given separately) is the
 * writable destination root; sources are other directories, read only.
 */
export interface FileOpContext {
  /** A readable directory for an action's `src` input: the context dir, or another stage's mounted rootfs. */
  sourceDir(input: number): string;
  /** `.dockerignore` patterns for the context input, [] otherwise. */
  sourceExcludes(input: number): readonly string[];
  /** Resolve `--chown` against the destination rootfs's account files. */
  resolveChown(spec: UserSpec): Promise<{ uid: number; gid: number }>;
  /**
   * What kind of input `src` is. Files from the context (and heredoc or http
   * files) become 0:0 unless --chown; files from a stage or image keep their
   * owners. Optional for compatibility: when absent, an input with
   * `.dockerignore` patterns counts as the context and any other keeps owners.
   */
  sourceKind?(input: number): 'context' | 'rootfs';
  /** The name a lone fetched file takes in a directory destination, when its server named it (see HttpSourceDef). */
  sourceFileName?(input: number): string | undefined;
  /** SOURCE_DATE_EPOCH in seconds: copied and created mtimes are clamped to it. */
  sourceDateEpoch?: number;
  /** Files an earlier result of this copy holds, linked rather than written again (reuse.ts). */
  reuse?: FileReuse;
}

export class FileOpError extends BuildliteError {
  readonly code: ErrorCode;
  constructor(
    message: string,
    readonly path: string,
    code: ErrorCode = 'INVALID_ARGUMENT',
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.code = code;
  }
  override details() {
    return { path: this.path };
  }
}

/** COPY/ADD with a source that is not there (Docker's "not found"), naming the path as written. */
export class SourceNotFoundError extends FileOpError {
  constructor(pattern: string) {
    super(`COPY failed: source ${JSON.stringify(pattern)} not found in the build input`, pattern, 'NOT_FOUND');
  }
}

export interface Owner {
  readonly uid: number;
  readonly gid: number;
}

export const ROOT_OWNER: Owner = { uid: 0, gid: 0 };

/** The time stamped on things we create rather than copy. */
export function createdTime(ctx: Pick<FileOpContext, 'sourceDateEpoch'>): Date {
  return ctx.sourceDateEpoch !== undefined ? new Date(ctx.sourceDateEpoch * 1000) : new Date();
}

/**
 * Create every missing directory from `rootDir` down to `hostDir` (a path
 * already resolved inside the root, so existing components are real dirs).
 * New dirs get 0755 and `owner`, as BuildKit's MkdirAll with a chown does.
 */
export async function mkdirAllInRoot(rootDir: string, hostDir: string, owner: Owner, when: Date): Promise<void> {
  const rel = path.relative(rootDir, hostDir);
  if (rel === '') return;
  if (rel.startsWith('..') || path.isAbsolute(rel)) throw new FileOpError(`path ${hostDir} is outside the root`, hostDir, 'UNSAFE_PATH');
  let cur = rootDir;
  for (const part of rel.split(path.sep)) {
    cur = path.join(cur, part);
    const st = await lstat(cur).catch(() => undefined);
    if (st?.isDirectory()) continue;
    if (st) throw new FileOpError(`cannot create directory ${cur.slice(rootDir.length) || '/'}: a non-directory is in the way`, cur);
    await mkdir(cur, 0o755);
    await chown(cur, owner.uid, owner.gid);
    await chmod(cur, 0o755);
    await utimes(cur, when, when);
  }
}

/** Clear a path for a new non-directory entry: a file, link or whole directory tree goes. */
export async function removeExisting(hostPath: string): Promise<void> {
  const st = await lstat(hostPath).catch(() => undefined);
  if (!st) return;
  if (st.isDirectory()) await rm(hostPath, { recursive: true, force: true });
  else await unlink(hostPath);
}
