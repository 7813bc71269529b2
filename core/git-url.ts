import { CodedError } from './errors.js';
import { redactUrlCredentials } from './redact.js';

/**
 * Git source addresses as BuildKit reads them (`ADD <git url>`, a git build
 * context, `--build-context name=<git url>`):
 *
 *   https://host/org/repo.git#ref:subdir        (http too; the path must end in .git)
 *   ssh://git@host[:port]/org/repo[.git]#ref     git://host/org/repo#ref
 *   git@host:org/repo.git#ref:subdir            (scp-like: ssh)
 *
 * and the query form (`?ref=`, `?tag=`, `?branch=`, `?subdir=`, `?checksum=`
 * or `?commit=`, `?keep-git-dir=`), which may not contradict the fragment.
 * The remote given to git keeps neither fragment nor query. Credentials in a
 * URL are refused: they would end up in the build graph, history and logs;
 * git authenticates with the GIT_AUTH_TOKEN / GIT_AUTH_HEADER secrets or a
 * forwarded ssh agent instead (docs/security.md T5).
 */
export interface GitUrl {
  /** What git fetches: scheme, host, path; no fragment, no query, no password. */
  readonly remote: string;
  readonly scheme: 'https' | 'http' | 'ssh' | 'git';
  /** Host name or address (IPv6 without brackets), for the network policy. */
  readonly host: string;
  /** Explicit port, when the URL names one. */
  readonly port?: number;
  /** Branch, tag, full ref or commit; absent: the remote's HEAD. */
  readonly ref?: string;
  /** Directory inside the repository whose content is the source (no leading or trailing `/`). */
  readonly subdir?: string;
  /** Expected commit (a hex prefix), from `?checksum=` / `?commit=`. */
  readonly checksum?: string;
  readonly keepGitDir?: boolean;
}

export class GitUrlError extends CodedError {
  constructor(text: string, why: string) {
    super('INVALID_ARGUMENT', `git URL ${JSON.stringify(redactUrlCredentials(text).slice(0, 200))}: ${why}`);
  }
}

const SCHEME = /^([a-zA-Z0-9]+):\/\//;
const GIT_SCHEMES = new Set(['http', 'https', 'ssh', 'git']);
// BuildKit's scp-like form: user@host:path[?query][#fragment].
const SCP = /^([a-zA-Z0-9_-]+)@([a-zA-Z0-9.-]+):(.*?)(?:\?(.*?))?(?:#(.*))?$/;
const HEX = /^[0-9a-f]+$/;

/** Does BuildKit read this text as a git source (rather than a URL to download or a path)? */
export function isGitUrl(text: string): boolean {
  const scheme = SCHEME.exec(text)?.[1]?.toLowerCase();
  if (scheme === undefined) return SCP.test(text);
  if (scheme === 'ssh' || scheme === 'git') return true;
  if (scheme !== 'http' && scheme !== 'https') return false;
  try {
    return new URL(text).pathname.endsWith('.git');
  } catch {
    return false;
  }
}

/** A full commit id: 40 (SHA-1) or 64 (SHA-256) lower-case hex digits. */
export function isCommitId(ref: string): boolean {
  return (ref.length === 40 || ref.length === 64) && HEX.test(ref);
}

export function parseGitUrl(text: string): GitUrl {
  if (text.length > 4096) throw new GitUrlError(text, 'longer than 4096 characters');
  const scheme = SCHEME.exec(text)?.[1]?.toLowerCase();
  if (scheme === undefined) return fromScp(text);
  if (!GIT_SCHEMES.has(scheme)) throw new GitUrlError(text, `${scheme}:// is not a git transport (want https, http, ssh or git)`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new GitUrlError(text, 'not a valid URL');
  }
  if (url.password !== '' || (url.username !== '' && scheme !== 'ssh')) {
    throw new GitUrlError(text, 'credentials in a git URL are refused (they would be kept in the build graph, history and logs): pass a GIT_AUTH_TOKEN or GIT_AUTH_HEADER secret, or forward an ssh agent for ssh URLs');
  }
  if ((scheme === 'http' || scheme === 'https') && !url.pathname.endsWith('.git')) {
    throw new GitUrlError(text, 'an http(s) git URL must end in .git (otherwise it is a file to download)');
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (host === '') throw new GitUrlError(text, 'no host');
  const remote = `${url.protocol}//${url.username ? `${url.username}@` : ''}${url.host}${url.pathname}`;
  return finish(text, { remote, scheme: scheme as GitUrl['scheme'], host, ...(url.port ? { port: Number(url.port) } : {}) }, url.hash.slice(1), url.searchParams);
}

function fromScp(text: string): GitUrl {
  const m = SCP.exec(text);
  if (!m) throw new GitUrlError(text, 'not a git URL (want https://host/repo.git, ssh://, git:// or user@host:path)');
  const [, user, host, path, query, fragment] = m as unknown as [string, string, string, string, string | undefined, string | undefined];
  if (path === '') throw new GitUrlError(text, 'no repository path');
  return finish(text, { remote: `${user}@${host}:${path}`, scheme: 'ssh', host }, fragment ?? '', new URLSearchParams(query ?? ''));
}

type Base = Pick<GitUrl, 'remote' | 'scheme' | 'host' | 'port'>;

/** The fragment (`ref:subdir`) and query options, checked against each other. */
function finish(text: string, base: Base, fragment: string, query: URLSearchParams): GitUrl {
  const colon = fragment.indexOf(':');
  let ref = decode(text, colon < 0 ? fragment : fragment.slice(0, colon)) || undefined;
  let subdir = colon < 0 ? undefined : cleanSubdir(decode(text, fragment.slice(colon + 1)));
  let checksum: string | undefined;
  let keepGitDir: boolean | undefined;
  const set = (what: string, cur: string | undefined, v: string): string => {
    if (cur !== undefined && cur !== v) throw new GitUrlError(text, `${what} conflicts: ${JSON.stringify(cur)} vs ${JSON.stringify(v)}`);
    return v;
  };
  let tag: string | undefined;
  let branch: string | undefined;
  for (const key of new Set(query.keys())) {
    const values = query.getAll(key);
    if (values.length > 1) throw new GitUrlError(text, `query ${JSON.stringify(key)} has more than one value`);
    const v = values[0] ?? '';
    if (v === '' && key !== 'keep-git-dir') throw new GitUrlError(text, `query ${JSON.stringify(key)} has no value`);
    switch (key) {
      case 'ref':
        ref = set('ref', ref, v);
        break;
      case 'tag':
        tag = v.startsWith('refs/tags/') ? v : `refs/tags/${v}`;
        break;
      case 'branch':
        branch = v.startsWith('refs/heads/') ? v : `refs/heads/${v}`;
        break;
      case 'subdir':
        subdir = set('subdir', subdir, cleanSubdir(v) ?? '');
        break;
      case 'checksum':
      case 'commit':
        checksum = set('checksum', checksum, v);
        break;
      case 'keep-git-dir':
        if (v !== '' && v !== 'true' && v !== 'false' && v !== '1' && v !== '0') throw new GitUrlError(text, `keep-git-dir=${v}: want true or false`);
        keepGitDir = v === '' || v === 'true' || v === '1';
        break;
      default:
        throw new GitUrlError(text, `unexpected query ${JSON.stringify(key)}`);
    }
  }
  if (tag !== undefined && branch !== undefined) throw new GitUrlError(text, 'branch conflicts with tag');
  if (tag !== undefined) ref = set('ref', ref, tag);
  if (branch !== undefined) ref = set('ref', ref, branch);
  if (ref !== undefined) checkRef(text, ref);
  if (checksum !== undefined) checksum = checkChecksum(text, checksum);
  return {
    ...base,
    ...(ref !== undefined ? { ref } : {}),
    ...(subdir ? { subdir } : {}),
    ...(checksum !== undefined ? { checksum } : {}),
    ...(keepGitDir !== undefined ? { keepGitDir } : {}),
  };
}

function decode(text: string, s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new GitUrlError(text, `bad percent-encoding in ${JSON.stringify(s)}`);
  }
}

/** `/a/../b/` → `b`; the root → undefined. Never leaves the repository (resolved as if it were `/`). */
function cleanSubdir(s: string): string | undefined {
  const parts: string[] = [];
  for (const p of s.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') parts.pop();
    else parts.push(p);
  }
  return parts.length ? parts.join('/') : undefined;
}

/**
 * A ref is handed to git as an argument and in a refspec: one that starts
 * with `-` would be read as an option, and whitespace, `:` or control
 * characters would change the refspec (git's own check-ref-format rules are
 * stricter; git applies them).
 */
export function checkRef(text: string, ref: string): void {
  if (ref.startsWith('-') || /[\s:^~?*[\\\x00-\x1f\x7f]/.test(ref) || ref.includes('..') || ref.length > 1024) {
    throw new GitUrlError(text, `invalid ref ${JSON.stringify(ref.slice(0, 100))}`);
  }
}

/** A commit checksum: hex, any prefix length git accepts (BuildKit's rule), lower-cased. */
export function checkChecksum(text: string, checksum: string): string {
  const c = checksum.toLowerCase();
  if (!HEX.test(c) || c.length < 4 || c.length > 64) throw new GitUrlError(text, `checksum ${JSON.stringify(checksum.slice(0, 80))}: want a commit id (4 to 64 hex digits)`);
  return c;
}
