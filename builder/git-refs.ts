import { isCommitId } from '../core/git-url.js';

/** A ref as the remote advertises it: the object it points at, the full name, and the commit under an annotated tag. */
export interface AdvertisedRef {
  readonly sha: string;
  readonly ref: string;
  /** Set when `sha` is an annotated tag object: the commit it tags. */
  readonly peeled?: string;
}

/**
 * Which advertised ref a Dockerfile's ref names, by BuildKit's rules (git
 * checkout's preference): the name as a full ref (`refs/…`), else a branch,
 * else a tag. `out` is `git ls-remote -- URL REF REF^{}`.
 */
export function pickRef(out: string, ref: string): AdvertisedRef | undefined {
  const short = ref.replace(/^refs\//, '');
  const full = `refs/${short}`;
  const head = `refs/heads/${ref.replace(/^refs\/heads\//, '')}`;
  const tag = `refs/tags/${ref.replace(/^refs\/tags\//, '')}`;
  const found = new Map<string, string>();
  for (const line of out.split('\n')) {
    const tab = line.indexOf('\t');
    if (tab < 0) continue;
    const sha = line.slice(0, tab);
    if (isCommitId(sha)) found.set(line.slice(tab + 1), sha);
  }
  for (const name of [full, head]) {
    const sha = found.get(name);
    if (sha !== undefined) return { sha, ref: name };
  }
  const sha = found.get(tag);
  if (sha === undefined) return undefined;
  const peeled = found.get(`${tag}^{}`);
  return { sha, ref: tag, ...(peeled !== undefined && peeled !== sha ? { peeled } : {}) };
}

/** The remote's HEAD from `git ls-remote --symref -- URL HEAD`: its commit, and the branch it names when it says. */
export function pickHead(out: string): AdvertisedRef | undefined {
  let ref: string | undefined;
  let sha: string | undefined;
  for (const line of out.split('\n')) {
    const m = /^ref: (refs\/\S+)\tHEAD$/.exec(line);
    if (m) ref = m[1];
    const tab = line.indexOf('\t');
    if (tab > 0 && line.slice(tab + 1) === 'HEAD' && isCommitId(line.slice(0, tab))) sha = line.slice(0, tab);
  }
  if (sha === undefined) return undefined;
  return { sha, ref: ref ?? 'HEAD' };
}
