import path from 'node:path';
import type { Digest } from '../core/digest.js';
import { CodedError } from '../core/errors.js';
import type { NetTimeouts } from '../core/net-faults.js';
import { parseReference } from '../core/reference.js';
import { LocalContentStore } from '../cache/index.js';
import { RegistryClient } from '../registry-client/index.js';
import { FileBlobHomes } from './blob-homes.js';
import { exportToRegistry, loadBuilt, TagStore } from './image/index.js';
import { registerRootUse } from './root-users.js';

export interface PushTaggedOptions {
  readonly root: string;
  readonly insecureRegistries?: readonly string[];
  readonly timeouts?: Partial<NetTimeouts>;
  /** Push under this name instead of `ref`. */
  readonly as?: string;
  readonly signal?: AbortSignal;
}

/**
 * `buildlite push REF`: a tagged build from the root's store to its registry,
 * with only the parts a push uses (tags, content store, registry client and
 * the record of where blobs came from). Opening a whole Builder for it
 * (solver, executor, snapshotter, their modules and the root's reclaim) was
 * a fifth of a re-push, which is mostly Node's start. The process still
 * registers as a user of the root while it reads from it. Builder.push does
 * the same with the builder's own parts (whose store may also know blobs an
 * imported cache holds).
 */
export async function pushTagged(ref: string, opts: PushTaggedOptions): Promise<Digest> {
  // Both names are checked before anything is read or sent (and a password in either is never echoed).
  const name = parseReference(ref);
  if (opts.as !== undefined) parseReference(opts.as);
  const root = path.resolve(opts.root);
  const use = await registerRootUse(root);
  try {
    const store = new LocalContentStore(path.join(root, 'content'));
    const desc = await new TagStore(root).get(name);
    if (!desc) throw new CodedError('NOT_FOUND', `no local image named ${ref}: build it with -t ${ref} first`);
    const registry = new RegistryClient({
      blobHomes: new FileBlobHomes(path.join(root, 'blob-homes')),
      ...(opts.insecureRegistries ? { insecureRegistries: [...opts.insecureRegistries] } : {}),
      ...(opts.timeouts ? { timeouts: opts.timeouts } : {}),
    });
    try {
      const built = await loadBuilt(store, desc);
      return (await exportToRegistry(registry, store, built, [opts.as ?? ref], opts.signal ? { signal: opts.signal } : {})).digest;
    } finally {
      await registry.close();
    }
  } finally {
    await use.release();
  }
}
