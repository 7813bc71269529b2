import { createReadStream } from 'node:fs';
import path from 'node:path';
import type { NamedContext } from '../core/build.js';
import type { BuildliteClient, SubmitRequest } from '../api/index.js';
import { packContext } from './context-pack.js';

type PbNamedContexts = NonNullable<SubmitRequest['named_contexts']>;

/**
 * `--build-context` for a build service: a directory (or an OCI layout, which
 * is one) is packed like the build context (its .dockerignore applies, links
 * stay links) and stored with PutContext unless the server already has that
 * digest, so the request names it by digest and never by a path of this
 * machine. Images and git URLs go as they are: the worker resolves them.
 */
export async function namedContextsForServer(client: BuildliteClient, contexts: Readonly<Record<string, NamedContext>>, tmp: string, signal: AbortSignal): Promise<PbNamedContexts> {
  const out: PbNamedContexts = [];
  let n = 0;
  for (const [name, c] of Object.entries(contexts)) {
    const base = { name, type: c.type, context_digest: '', ref: '', tag: '', digest: '', url: '' };
    if (c.type === 'image') out.push({ ...base, ref: c.ref });
    else if (c.type === 'git') out.push({ ...base, url: c.url });
    else {
      if (!('dir' in c.source)) throw new Error(`--build-context ${name}: already stored`);
      const packed = await packContext(c.source.dir, path.join(tmp, `named-${n++}.tar`));
      const digest = (await client.hasContext(packed.digest)) ? packed.digest : await client.putContext(createReadStream(packed.file), signal);
      out.push({ ...base, context_digest: digest, ...(c.type === 'oci-layout' ? { tag: c.tag ?? '', digest: c.digest ?? '' } : {}) });
    }
  }
  return out;
}
