import { readFileSync } from 'node:fs';
import { BuildliteError, type ErrorCode } from '../core/errors.js';

/** Rootless set-up the machine lacks (no subordinate ids, no newuidmap, user namespaces off); says what to run. */
export class RootlessSetupError extends BuildliteError {
  readonly code: ErrorCode = 'SANDBOX';
}

/** A block of host ids a user may map into a user namespace (a line of /etc/subuid or /etc/subgid). */
export interface IdRange {
  readonly start: number;
  readonly count: number;
}

export interface SubIdFiles {
  readonly uid: string;
  readonly gid: string;
}

/**
 * How many ids besides the user's own a rootless builder maps: 1..65536 in the
 * namespace, so every id an ordinary image uses (up to `nobody`, 65534) can own
 * a file in a layer, as it does when root builds.
 */
export const MAPPED_IDS = 65536;

/** The usual form of a range for the set-up hint; the administrator picks a free one. */
const HINT_RANGE = '100000-165535';

/**
 * The first range of `user` (by name or by uid, as shadow-utils accepts both)
 * in subuid/subgid text, if any. Malformed lines are skipped, as newuidmap does.
 */
export function parseSubIds(text: string, user: { readonly name: string; readonly id: number }): IdRange | undefined {
  for (const line of text.split('\n')) {
    const [owner, start, count] = line.trim().split(':');
    if (owner === undefined || start === undefined || count === undefined) continue;
    if (owner !== user.name && owner !== String(user.id)) continue;
    const s = Number(start);
    const c = Number(count);
    if (!Number.isSafeInteger(s) || !Number.isSafeInteger(c) || s < 0 || c <= 0) continue;
    return { start: s, count: c };
  }
  return undefined;
}

/** The user's uid and gid ranges, each at least MAPPED_IDS long; otherwise an error naming the file and the command that fixes it. */
export function subordinateIds(
  user: { readonly name: string; readonly uid: number; readonly gid: number },
  files: SubIdFiles = { uid: '/etc/subuid', gid: '/etc/subgid' },
): { readonly uids: IdRange; readonly gids: IdRange } {
  const fix = `as root, add one: usermod --add-subuids ${HINT_RANGE} --add-subgids ${HINT_RANGE} ${user.name} (or: bash scripts/provision.sh --rootless-user ${user.name})`;
  const one = (file: string, kind: 'uid' | 'gid', id: number): IdRange => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new RootlessSetupError(`rootless: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)}), where the subordinate ${kind}s of ${user.name} are listed: ${fix}`);
    }
    const range = parseSubIds(text, { name: user.name, id });
    if (range === undefined) {
      throw new RootlessSetupError(`rootless: user ${user.name} (${kind} ${id}) has no subordinate ${kind} range in ${file}, which a rootless build maps into its user namespace: ${fix}`);
    }
    if (range.count < MAPPED_IDS) {
      throw new RootlessSetupError(
        `rootless: the subordinate ${kind} range of ${user.name} in ${file} holds ${range.count} ids, fewer than the ${MAPPED_IDS} an image's files may use: ${fix}`,
      );
    }
    return range;
  };
  return { uids: one(files.uid, 'uid', user.uid), gids: one(files.gid, 'gid', user.gid) };
}
