import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ContextSource, NamedContext } from '../core/build.js';
import type { ContentStore } from '../core/content.js';
import { CodedError } from '../core/errors.js';
import { parseIgnoreFile } from '../core/ignore.js';
import type { Platform } from '../core/oci.js';
import type { ImageResolver, NamedSource, ResolvedImage } from './graph/index.js';
import { importOciLayout, withLayouts } from './oci-layout.js';

/** Named contexts made ready for one build: what the frontend sees, where the solver reads, how images resolve. */
export interface PreparedContexts {
  /** By name as given: the frontend normalises names the way BuildKit does. */
  readonly specs: ReadonlyMap<string, NamedSource>;
  /** Local source name → directory, for the solver (COPY --from=NAME hashes and copies from there). */
  readonly localDirs: ReadonlyMap<string, string>;
  /** The build's resolver: imported OCI layouts first, then `base`. */
  readonly resolver: ImageResolver;
}

/**
 * `--build-context` for the builder: a directory becomes a local source with
 * its own .dockerignore, an OCI layout's image is imported into the content
 * store, images and git URLs pass through to the frontend. An embedded
 * builder reads directories; a worker has unpacked uploads into directories
 * before it gets here.
 */
export async function prepareNamedContexts(
  contexts: Readonly<Record<string, NamedContext>>,
  deps: { readonly store: ContentStore; readonly base: ImageResolver; readonly platform: Platform },
): Promise<PreparedContexts> {
  const specs = new Map<string, NamedSource>();
  const localDirs = new Map<string, string>();
  const layouts = new Map<string, ResolvedImage>();
  for (const [name, c] of Object.entries(contexts)) {
    const what = `--build-context ${name}`;
    switch (c.type) {
      case 'local': {
        const dir = await directory(c.source, what);
        const ignore = await readFile(path.join(dir, '.dockerignore'), 'utf8').catch(() => '');
        // Its own local source: the name keeps it apart from the build context and other named ones in keys.
        const local = `named:${name}`;
        specs.set(name, { kind: 'local', name: local, excludes: parseIgnoreFile(ignore) });
        localDirs.set(local, dir);
        break;
      }
      case 'oci-layout': {
        const image = await importOciLayout(deps.store, await directory(c.source, what), { ...(c.tag !== undefined ? { tag: c.tag } : {}), ...(c.digest !== undefined ? { digest: c.digest } : {}) }, deps.platform, what);
        layouts.set(image.ref, image);
        specs.set(name, { kind: 'image', ref: image.ref });
        break;
      }
      case 'image':
        specs.set(name, { kind: 'image', ref: c.ref });
        break;
      case 'git':
        specs.set(name, { kind: 'git', url: c.url });
        break;
    }
  }
  return { specs, localDirs, resolver: withLayouts(deps.base, layouts) };
}

async function directory(source: ContextSource, what: string): Promise<string> {
  if (!('dir' in source)) throw new CodedError('INVALID_ARGUMENT', `${what}: an embedded builder needs a directory (an uploaded context is unpacked by the worker first)`);
  const st = await stat(source.dir).catch(() => undefined);
  // The name, not the path: errors never carry host paths.
  if (!st?.isDirectory()) throw new CodedError('NOT_FOUND', `${what}: the directory does not exist`);
  return path.resolve(source.dir);
}
