import { statSync } from 'node:fs';
import path from 'node:path';
import type { NamedContext } from '../core/build.js';
import { isDigest } from '../core/digest.js';
import { isGitUrl, parseGitUrl } from '../core/git-url.js';
import { checkReferenceFlag } from './flags.js';
import { UsageError } from './usage.js';

/** A context name as FROM or --from could write it: a stage name or an image reference. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$/;

/**
 * `--build-context NAME=VALUE` (buildx's syntax): `docker-image://REF`,
 * `oci-layout://PATH[:TAG|@sha256:…]`, a git URL, or a local directory.
 * Checked here, before anything runs: a bad reference or a missing
 * directory is a usage error.
 */
export function parseBuildContext(flag: string): [string, NamedContext] {
  const eq = flag.indexOf('=');
  const name = eq < 0 ? '' : flag.slice(0, eq);
  const value = eq < 0 ? '' : flag.slice(eq + 1);
  if (!NAME.test(name) || value === '') throw new UsageError(`--build-context "${flag.slice(0, 200)}": want NAME=DIR, NAME=docker-image://REF, NAME=oci-layout://PATH[:TAG|@DIGEST] or NAME=GIT-URL`, 'build');
  const what = `--build-context ${name}`;
  if (value.startsWith('docker-image://')) return [name, { type: 'image', ref: checkReferenceFlag('build', what, value.slice('docker-image://'.length)) }];
  if (value.startsWith('oci-layout://')) return [name, ociLayout(what, value.slice('oci-layout://'.length))];
  if (isGitUrl(value)) {
    try {
      parseGitUrl(value);
    } catch (err) {
      throw new UsageError(`${what}: ${(err as Error).message}`, 'build');
    }
    return [name, { type: 'git', url: value }];
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) throw new UsageError(`${what}: ${value.split('://')[0]}:// is not a context buildlite reads (a URL context must be a git repository)`, 'build');
  return [name, { type: 'local', source: { dir: existingDir(what, value) } }];
}

/** `PATH`, `PATH:TAG` or `PATH@sha256:…`; the tag is what follows the last `:` after the last `/`. */
function ociLayout(what: string, spec: string): NamedContext {
  let dir = spec;
  let tag: string | undefined;
  let digest: string | undefined;
  const at = spec.lastIndexOf('@');
  if (at > spec.lastIndexOf('/')) {
    digest = spec.slice(at + 1);
    dir = spec.slice(0, at);
    if (!isDigest(digest)) throw new UsageError(`${what}: "${digest}" is not a digest (want sha256:<64 hex>)`, 'build');
  } else {
    const colon = spec.lastIndexOf(':');
    if (colon > spec.lastIndexOf('/')) {
      tag = spec.slice(colon + 1);
      dir = spec.slice(0, colon);
    }
  }
  return { type: 'oci-layout', source: { dir: existingDir(what, dir) }, ...(tag ? { tag } : {}), ...(digest && isDigest(digest) ? { digest } : {}) };
}

function existingDir(what: string, dir: string): string {
  const abs = path.resolve(dir);
  if (!statSync(abs, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`${what}: ${dir} is not a directory`, 'build');
  return abs;
}
