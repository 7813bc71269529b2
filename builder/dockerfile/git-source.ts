import type { Digest } from '../../core/digest.js';
import { checkChecksum, parseGitUrl, type GitUrl } from '../../core/git-url.js';
import { redactUrlCredentials } from '../../core/redact.js';
import type { GitSourceDef, VertexMeta } from '../graph/index.js';
import { DockerfileError } from './errors.js';
import type { ConvertContext } from './state.js';

/** What a Dockerfile or a flag adds to a git URL: ADD's --checksum and --keep-git-dir. */
export interface GitSourceFlags {
  readonly checksum?: string;
  readonly keepGitDir?: boolean;
}

/**
 * A git URL as a source vertex (ADD <git url>, a git named context). The
 * URL's own options and the flags must agree, as BuildKit requires; a kept
 * `.git` needs the whole repository, so it is dropped with a subdir (BuildKit
 * does the same).
 */
export function gitSourceDef(text: string, flags: GitSourceFlags = {}): GitSourceDef {
  let url: GitUrl;
  try {
    url = parseGitUrl(text);
  } catch (err) {
    throw new DockerfileError((err as Error).message, { cause: err });
  }
  let checksum = url.checksum;
  if (flags.checksum !== undefined) {
    let c: string;
    try {
      c = checkChecksum(text, flags.checksum);
    } catch (err) {
      throw new DockerfileError(`--checksum=${flags.checksum}: a git source's checksum is a commit id (4 to 64 hex digits)`, { cause: err });
    }
    if (checksum !== undefined && checksum !== c) throw new DockerfileError(`checksum mismatch: ${JSON.stringify(checksum)} in the URL, ${JSON.stringify(c)} in --checksum`);
    checksum = c;
  }
  return {
    kind: 'git',
    remote: url.remote,
    ...(url.ref !== undefined ? { ref: url.ref } : {}),
    ...(url.subdir !== undefined ? { subdir: url.subdir } : {}),
    keepGitDir: (flags.keepGitDir === true || url.keepGitDir === true) && url.subdir === undefined,
    ...(checksum !== undefined ? { checksum } : {}),
  };
}

/** Adds the git vertex (shared by every use of the same source) with its progress name. */
export function addGitSource(ctx: ConvertContext, def: GitSourceDef, meta: VertexMeta): Digest {
  const d = ctx.graph.add(def, [], { ...meta, name: redactUrlCredentials(meta.name) });
  return d;
}
