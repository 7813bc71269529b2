import { CodedError } from '../../core/errors.js';
import type { LayerRef } from '../../cache/index.js';
import type { GitSourceDef } from '../graph/index.js';
import { runOnSnapshot } from './snapshot-step.js';
import type { GitAuth, OpContext, ResolvedGit, SolveOptions } from './types.js';

/**
 * A git source that missed the cache: the commit's tree is checked out into a
 * fresh snapshot, which becomes the source's one layer. The next build that
 * resolves the same commit hits the key and never fetches.
 */
export async function runGitSource(def: GitSourceDef, at: ResolvedGit, ctx: OpContext): Promise<LayerRef[]> {
  const { deps, opts } = ctx;
  if (!deps.git) throw new CodedError('PERMISSION_DENIED', `git source ${def.remote}: fetching git repositories is not enabled on this builder`);
  const git = deps.git;
  // A checkout carries no xattrs, and on an empty parent no directory is opaque. The step's layer limits apply.
  return runOnSnapshot(ctx, [], 'git', (dir) => git.checkout(def, at, dir, gitAuth(opts), opts.signal), { readXattrs: false });
}

export function gitAuth(opts: SolveOptions): GitAuth {
  return { secrets: opts.secrets, ssh: opts.ssh ?? new Map() };
}
