import { lstat, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { anySignal } from '../core/dispose.js';
import { CodedError } from '../core/errors.js';
import { isCommitId, parseGitUrl } from '../core/git-url.js';
import { AddressPolicy } from './address-policy.js';
import { GitError, runGit, type GitRun } from './git-cli.js';
import { pickHead, pickRef } from './git-refs.js';
import { openGitSession, type GitSession } from './git-session.js';
import { updateSubmodules, type SubmoduleDeps } from './git-submodules.js';
import { HTTP_DEFAULTS, resolveAllowed, systemResolve, type HostCheck, type HttpPolicy, type Resolve } from './http-fetch.js';
import type { GitSourceDef } from './graph/index.js';
import type { GitAuth, GitFetcher, ResolvedGit } from './solver/index.js';

export interface GitSourceOptions {
  /** The same network policy as `ADD <url>` (docs/security.md T7): the remote's host is resolved and checked. */
  readonly policy?: HttpPolicy;
  /** Private scratch space (repositories, the ssh config). */
  readonly tmpDir: string;
  /** Deadline for one resolve or one checkout. */
  readonly timeoutMs?: number;
  readonly resolveName?: Resolve;
}

export const GIT_DEFAULTS = {
  // The same cap as a URL fetch: a large repository at a slow rate still fits; a stuck one does not hold a build forever.
  timeoutMs: 10 * 60_000,
} as const;

/**
 * Git sources with the git CLI (BuildKit's semantics): the ref is resolved
 * with `git ls-remote` (the commit keys the cache, so a known commit is never
 * fetched again), and a miss fetches that one commit shallowly into a fresh
 * bare repository of ours, then checks its tree out. Nothing of the fetched
 * repository runs (git-cli.ts); its host passes the URL policy first and the
 * connection is pinned to the checked address (git-session.ts).
 */
export class GitSource implements GitFetcher {
  private readonly addresses: AddressPolicy;
  private readonly hint: string;
  private readonly timeoutMs: number;
  private readonly resolveName: Resolve;

  constructor(private readonly opts: GitSourceOptions) {
    this.addresses = new AddressPolicy({ allowPrivate: opts.policy?.allowPrivate ?? false, allowNetworks: opts.policy?.allowNetworks ?? [] });
    this.hint = opts.policy?.deniedHint ?? HTTP_DEFAULTS.deniedHint;
    this.timeoutMs = opts.timeoutMs ?? GIT_DEFAULTS.timeoutMs;
    if (!Number.isSafeInteger(this.timeoutMs) || this.timeoutMs <= 0) throw new CodedError('INVALID_OPTION', `git timeoutMs: want a positive integer, got ${this.timeoutMs}`);
    this.resolveName = opts.resolveName ?? systemResolve;
  }

  async resolve(def: GitSourceDef, auth: GitAuth, signal?: AbortSignal): Promise<ResolvedGit> {
    const what = describe(def);
    if (def.ref !== undefined && isCommitId(def.ref)) {
      checkChecksum(what, def, def.ref);
      return { commit: def.ref };
    }
    return this.withSession(def, auth, signal, async (s) => {
      const out = def.ref === undefined
        ? await runGit(['ls-remote', '--symref', '--', s.remote, 'HEAD'], s)
        : await runGit(['ls-remote', '--', s.remote, def.ref, `${def.ref}^{}`], s);
      const found = def.ref === undefined ? pickHead(out) : pickRef(out, def.ref);
      if (!found) throw new GitError(`${what}: the repository has no ${def.ref === undefined ? 'HEAD' : `ref ${JSON.stringify(def.ref)}`}`, 'NOT_FOUND', false);
      // A kept .git holds the tag object itself; otherwise the tagged commit is the source (BuildKit).
      const commit = def.keepGitDir ? found.sha : (found.peeled ?? found.sha);
      checkChecksum(what, def, commit, found.sha);
      return { commit, ...(found.ref !== 'HEAD' ? { ref: found.ref } : {}) };
    });
  }

  async checkout(def: GitSourceDef, at: ResolvedGit, dir: string, auth: GitAuth, signal?: AbortSignal): Promise<void> {
    await this.withSession(def, auth, signal, async (s) => {
      const repo = path.join(s.dir, 'repo.git');
      const format = at.commit.length === 64 ? ['--object-format=sha256'] : [];
      await runGit(['init', '-q', '--bare', '--template=', ...format, repo], s);
      await fetchCommit(s, repo, at);
      const subs: SubmoduleDeps = { session: s, check: (host) => resolveAllowed(host, this.hostCheck(def)) };
      if (def.keepGitDir) await checkoutWithGitDir(s, repo, at, dir, format, subs);
      else await checkoutTree(s, repo, at, dir, def.subdir, describe(def), subs);
    });
  }

  private hostCheck(def: GitSourceDef): HostCheck {
    return { addresses: this.addresses, resolveName: this.resolveName, what: describe(def), hint: this.hint };
  }

  /** Runs `fn` against the remote's checked address, within the deadline; messages say which source failed. */
  private async withSession<T>(def: GitSourceDef, auth: GitAuth, signal: AbortSignal | undefined, fn: (s: GitSession) => Promise<T>): Promise<T> {
    const what = describe(def);
    const url = parseGitUrl(def.remote);
    const deadline = anySignal([signal], this.timeoutMs);
    const address = await resolveAllowed(url.host, this.hostCheck(def));
    try {
      await using s = await openGitSession(def.remote, address, auth, this.opts.tmpDir, deadline);
      return await fn(s);
    } catch (err) {
      if (deadline.aborted && !signal?.aborted) throw new GitError(`${what}: not finished within ${this.timeoutMs / 1000} s`, 'LIMIT_EXCEEDED', true, { cause: err });
      if (err instanceof GitError && !err.message.startsWith(what)) throw new GitError(`${what}: ${err.message}`, err.code, err.retryable, { cause: err });
      throw err;
    }
  }
}

/** How a source is named in messages: the remote (never with credentials: the URL parser refuses them) and what of it. */
function describe(def: GitSourceDef): string {
  return `git source ${def.remote}${def.ref !== undefined ? `#${def.ref}` : ''}${def.subdir !== undefined ? `:${def.subdir}` : ''}`;
}

function checkChecksum(what: string, def: GitSourceDef, commit: string, alsoOk?: string): void {
  if (def.checksum === undefined || commit.startsWith(def.checksum) || alsoOk?.startsWith(def.checksum)) return;
  throw new CodedError('DIGEST_MISMATCH', `${what}: the ref is commit ${commit}, not the expected ${def.checksum} (--checksum)`);
}

/** Does the repository hold this commit (or a tag of it)? */
async function has(run: GitRun, repo: string, commit: string): Promise<boolean> {
  return runGit(['--git-dir', repo, 'cat-file', '-e', `${commit}^{commit}`], run).then(() => true, (err: unknown) => {
    if (err instanceof GitError) return false;
    throw err;
  });
}

/**
 * One commit, shallow: by its ref (what every server allows), else by id
 * (servers that allow it), else everything (and then the commit must be in it).
 */
async function fetchCommit(s: GitSession, repo: string, at: ResolvedGit): Promise<void> {
  const fetch = (shallow: boolean, ...refspecs: string[]) =>
    runGit(['--git-dir', repo, 'fetch', '-q', '--no-tags', '--no-write-fetch-head', ...(shallow ? ['--depth=1'] : []), '--', s.remote, ...refspecs], s);
  if (at.ref !== undefined) {
    await fetch(true, `+${at.ref}:${at.ref}`);
    if (await has(s, repo, at.commit)) return;
  }
  try {
    await fetch(true, at.commit);
    if (await has(s, repo, at.commit)) return;
  } catch (err) {
    if (!(err instanceof GitError) || err.code !== 'NOT_FOUND') throw err;
  }
  // An older commit than any tip: whole history, in a fresh repository (a shallow one would hide it).
  await rm(repo, { recursive: true, force: true });
  await runGit(['init', '-q', '--bare', '--template=', ...(at.commit.length === 64 ? ['--object-format=sha256'] : []), repo], s);
  await fetch(false, '+refs/heads/*:refs/heads/*', '+refs/tags/*:refs/tags/*');
  if (!(await has(s, repo, at.commit))) {
    throw new GitError(`commit ${at.commit} is not in the repository${at.ref !== undefined ? ` (${at.ref} moved while it was fetched: build again)` : ''}`, 'NOT_FOUND', false);
  }
}

/** The commit's tree (or its subdir's) into `dir`, without `.git`. */
async function checkoutTree(s: GitSession, repo: string, at: ResolvedGit, dir: string, subdir: string | undefined, what: string, subs: SubmoduleDeps): Promise<void> {
  // A subdir is checked out whole next to the result, then its entries moved up: renames stay on one filesystem.
  const work = subdir === undefined ? dir : await mkdtemp(path.join(dir, '.checkout-'));
  await runGit(['--git-dir', repo, '--work-tree', work, 'checkout', '-q', '--no-overlay', at.commit, '--', '.'], s);
  await updateSubmodules(subs, repo, work, false);
  if (subdir === undefined) return;
  const from = await subdirIn(work, subdir, what);
  for (const name of await readdir(from)) await rename(path.join(from, name), path.join(dir, name));
  await rm(work, { recursive: true, force: true });
}

/**
 * The subdir inside a checkout, each component a real directory: a symlink
 * in the repository must not make the source a directory of this machine.
 */
async function subdirIn(work: string, subdir: string, what: string): Promise<string> {
  let cur = work;
  for (const part of subdir.split('/')) {
    cur = path.join(cur, part);
    const st = await lstat(cur).catch(() => undefined);
    if (!st?.isDirectory()) {
      throw new CodedError('NOT_FOUND', `${what}: ${subdir} is not a directory of the repository${st?.isSymbolicLink() ? ' (it is a symlink)' : ''}`);
    }
  }
  return cur;
}

/**
 * `--keep-git-dir`: a repository of its own in `dir`, holding the one commit
 * under its ref, `origin` set to the remote (BuildKit's layout: a detached
 * HEAD, no reflog, no FETCH_HEAD). It is filled from our bare repository over
 * file://, never by a local clone (which can be made to copy host files).
 */
async function checkoutWithGitDir(s: GitSession, repo: string, at: ResolvedGit, dir: string, format: string[], subs: SubmoduleDeps): Promise<void> {
  const gitDir = path.join(dir, '.git');
  const local: GitRun = { ...s, env: { ...s.env, GIT_ALLOW_PROTOCOL: 'file' } };
  const g = (...args: string[]) => runGit(['--git-dir', gitDir, '--work-tree', dir, ...args], local);
  await runGit(['init', '-q', '--template=', ...format, dir], local);
  await g('remote', 'add', 'origin', `file://${repo}`);
  const pull = at.ref !== undefined ? `${at.ref}:${at.ref}` : 'refs/buildlite/want';
  if (at.ref === undefined) await runGit(['--git-dir', repo, 'update-ref', 'refs/buildlite/want', at.commit], s);
  await g('fetch', '-q', '-u', '--depth=1', '--no-tags', '--', 'origin', pull);
  await g('checkout', '-q', 'FETCH_HEAD');
  await g('remote', 'set-url', 'origin', s.shown);
  await updateSubmodules(subs, gitDir, dir, true);
  await g('reflog', 'expire', '--all', '--expire=now');
  await rm(path.join(gitDir, 'FETCH_HEAD'), { force: true });
}
