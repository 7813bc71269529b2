import { digestJson, type Digest } from '../../core/digest.js';
import type { ExecDef, ExecMount, GitSourceDef, VertexDef } from '../graph/index.js';

/**
 * Proxy variables change where bytes come from, not what they are; BuildKit
 * drops them from keys too, so a CI runner behind a proxy shares cache with
 * a laptop that has none.
 */
const PROXY_ENV = new Set([
  'HTTP_PROXY', 'HTTPS_PROXY', 'FTP_PROXY', 'NO_PROXY', 'ALL_PROXY',
  'http_proxy', 'https_proxy', 'ftp_proxy', 'no_proxy', 'all_proxy',
]);

/**
 * The part of a definition that decides the output. Each dropped field and why:
 * - exec env proxy variables: see PROXY_ENV;
 * - cache mount `id`/`sharing`: they name storage, whose content is by definition not part of the output;
 * - secret mount values are never in a def; only the id and target stay (changing the target may change the output);
 *   ssh mounts likewise hold the agent's id, never its socket;
 * - git `remote`, `ref` and `checksum`: see scrubGit.
 */
export function scrub(def: VertexDef): unknown {
  if (def.kind === 'git') return scrubGit(def);
  if (def.kind !== 'exec') return def;
  return scrubExec(def);
}

/**
 * The resolved commit (in the key's content) stands for where it came from:
 * the same commit by another ref name or from a mirror is a hit, as in
 * BuildKit; the checksum only guards the resolution. A kept `.git` records
 * the remote and the ref, so then they stay.
 */
function scrubGit(def: GitSourceDef): unknown {
  const { remote, ref, checksum: _checksum, ...rest } = def;
  return def.keepGitDir ? { ...rest, remote, ...(ref !== undefined ? { ref } : {}) } : rest;
}

function scrubExec(def: ExecDef): unknown {
  return {
    ...def,
    env: def.env.filter((kv) => !PROXY_ENV.has(kv.slice(0, kv.indexOf('=') >>> 0))),
    mounts: def.mounts.map(scrubMount),
  };
}

function scrubMount(m: ExecMount): unknown {
  if (m.type !== 'cache') return m;
  const { id: _id, sharing: _sharing, ...rest } = m;
  return rest;
}

/** The pre-image of a key: kept in debug mode so a miss can be explained. */
export interface KeyPreimage {
  readonly def: unknown;
  readonly inputs: readonly Digest[];
  /** Content checksums of files a COPY/ADD reads, by action index. */
  readonly content: readonly (Digest | null)[];
}

const KEY_TAG = 'buildlite.cachekey.v1';

export function cacheKey(def: VertexDef, inputKeys: readonly Digest[], content: readonly (Digest | null)[]): {
  key: Digest;
  preimage: KeyPreimage;
} {
  const preimage: KeyPreimage = { def: scrub(def), inputs: inputKeys, content };
  return { key: digestJson(KEY_TAG, preimage), preimage };
}
