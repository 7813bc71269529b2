import { lstat, rm } from 'node:fs/promises';
import path from 'node:path';
import { CodedError } from '../core/errors.js';
import { isWithin } from '../core/safe-path.js';
import { runGit, type GitRun } from './git-cli.js';
import { curlResolve, withConfig, type GitSession } from './git-session.js';
import type { resolveAllowed } from './http-fetch.js';

/** How deep submodules of submodules are followed (BuildKit's --recursive has no bound; a repository can recurse). */
const MAX_DEPTH = 8;

/** What a submodule's remote may be, and how it is reached: the superproject's session, and the URL policy. */
export interface SubmoduleDeps {
  readonly session: GitSession;
  /** Resolves and checks a host as the superproject's was (docs/security.md T7). */
  readonly check: (host: string) => ReturnType<typeof resolveAllowed>;
}

interface Remote {
  readonly scheme: string;
  readonly host: string;
  readonly port?: number;
}

/**
 * `git submodule update --init --recursive --depth=1`, as BuildKit runs after
 * a checkout, one level at a time so that every submodule's remote is checked
 * before git connects: its URL (relative ones resolved against the
 * superproject's remote by `submodule init`) must use http(s), git or ssh
 * (never file://, ext:: or a path), its host passes the URL policy, and the
 * connection is pinned to the checked address as the superproject's is. The
 * update mode is forced to checkout, so no `update = !command` runs.
 */
export async function updateSubmodules(deps: SubmoduleDeps, gitDir: string, workTree: string, keepGitDir: boolean, depth = 0): Promise<void> {
  if (!(await lstat(path.join(workTree, '.gitmodules')).catch(() => undefined))?.isFile()) return;
  if (depth >= MAX_DEPTH) throw new CodedError('LIMIT_EXCEEDED', `submodules nest deeper than ${MAX_DEPTH} levels`);
  const { session } = deps;
  // Relative submodule URLs are relative to origin: the remote as written, never the pinned address.
  const here: GitRun = { ...session, cwd: workTree };
  const git = (args: string[], run: GitRun = here) => runGit(['--git-dir', gitDir, '--work-tree', workTree, ...args], run);
  await git(['config', 'remote.origin.url', session.shown]);
  await git(['submodule', 'init']);
  const urls = await git(['config', '--get-regexp', '^submodule\\..*\\.url$']).catch(() => '');
  const config: Array<[string, string]> = [];
  const schemes = new Set<string>();
  for (const line of urls.split('\n').filter(Boolean)) {
    const space = line.indexOf(' ');
    const name = line.slice('submodule.'.length, line.lastIndexOf('.url', space));
    const url = line.slice(space + 1);
    const remote = remoteOf(url, name);
    schemes.add(remote.scheme);
    const address = await deps.check(remote.host);
    if (remote.scheme === 'http' || remote.scheme === 'https') config.push(...curlResolve(remote as Remote & { scheme: 'http' | 'https' }, address));
    else if (remote.scheme === 'git') {
      const host = address.family === 6 ? `[${address.address}]` : address.address;
      await git(['config', `submodule.${name}.url`, url.replace(/^git:\/\/[^/]+/i, `git://${host}${remote.port !== undefined ? `:${remote.port}` : ''}`)]);
    } else if (address.address !== session.address.address) {
      // The session's ssh config pins every ssh connection to the superproject's address.
      throw new CodedError('INVALID_ARGUMENT', `submodule ${JSON.stringify(name)}: an ssh submodule must be on the superproject's host`);
    }
  }
  if (schemes.size === 0) return;
  const run: GitRun = { ...here, env: { ...withConfig(session.env, config), GIT_ALLOW_PROTOCOL: [...schemes].join(':') } };
  await git(['submodule', 'update', '--checkout', '--depth=1', '--no-recommend-shallow'], run);
  for (const line of urls.split('\n').filter(Boolean)) {
    const name = line.slice('submodule.'.length, line.lastIndexOf('.url', line.indexOf(' ')));
    const sub = (await git(['config', '--file', '.gitmodules', `submodule.${name}.path`]).catch(() => '')).trim();
    const subTree = path.join(workTree, sub);
    // The path is the repository's word: only a real directory inside the checkout is followed.
    if (sub === '' || !isWithin(workTree, subTree) || !(await lstat(subTree).catch(() => undefined))?.isDirectory()) continue;
    await updateSubmodules(deps, path.join(gitDir, 'modules', name), subTree, keepGitDir, depth + 1);
    // Without .git the submodule's gitfile would point at our scratch repository: it goes, as the superproject's .git does.
    const gitfile = path.join(subTree, '.git');
    if (!keepGitDir && (await lstat(gitfile).catch(() => undefined))?.isFile()) await rm(gitfile);
  }
}

/** A submodule's resolved URL: which transport and host git would use; anything else is refused. */
function remoteOf(url: string, name: string): Remote {
  const scp = /^[A-Za-z0-9_-]+@([A-Za-z0-9.-]+):/.exec(url);
  if (scp) return { scheme: 'ssh', host: scp[1]! };
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new CodedError('INVALID_ARGUMENT', `submodule ${JSON.stringify(name)}: its URL is not one buildlite fetches (want https, http, git or ssh)`);
  }
  const scheme = u.protocol.slice(0, -1).toLowerCase();
  if (!['https', 'http', 'git', 'ssh'].includes(scheme)) throw new CodedError('INVALID_ARGUMENT', `submodule ${JSON.stringify(name)}: ${scheme} URLs are not fetched (only https, http, git and ssh)`);
  if (u.password !== '' || (u.username !== '' && scheme !== 'ssh')) throw new CodedError('INVALID_ARGUMENT', `submodule ${JSON.stringify(name)}: URLs with credentials are refused`);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return { scheme, host, ...(u.port ? { port: Number(u.port) } : {}) };
}
