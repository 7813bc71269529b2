import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import type { BuildRequest, NamedContext } from '../core/build.js';
import type { Digest } from '../core/digest.js';
import { extractTar, remoteContextRequest, type Builder } from '../builder/index.js';
import type { ServiceStore } from '../store/index.js';
import type { QueuedRequest } from './jobs.js';

/** Prefix of per-build context dirs under `<root>/tmp`, so the startup sweep can find what a crash left. */
export const CONTEXT_DIR_PREFIX = 'ctx-';

export interface UnpackedContext {
  readonly dir: string;
  remove(): Promise<void>;
}

/**
 * Unpacks a stored context into a private temp dir: the store hands out a
 * stream that fails at its end unless the bytes match the digest, and the
 * tar is extracted with the layer extractor's path safety.
 */
export async function unpackContext(store: ServiceStore, digest: Digest, tmpRoot: string, signal?: AbortSignal): Promise<UnpackedContext> {
  await mkdir(tmpRoot, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(path.join(tmpRoot, CONTEXT_DIR_PREFIX));
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    const verified = await store.open('context', digest, signal);
    // rootMeta: the client's context root mode and mtime, which `COPY . dest` gives dest, exactly as a local build would.
    await extractTar(verified, dir, { whiteouts: false, rootMeta: true, ...(signal ? { signal } : {}) });
    return { dir, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}

export interface UnpackedBuild {
  /** The request with every stored context (the build context and named ones) as a directory. */
  readonly request: BuildRequest;
  remove(): Promise<void>;
}

/** What fetching a URL context needs: the worker's builder (its URL policy, its git cache) and the build's secrets (GIT_AUTH_TOKEN). */
export interface UrlContextDeps {
  readonly builder: Builder;
  readonly secrets: ReadonlyMap<string, Buffer>;
}

/**
 * A queued request's contexts unpacked for the builder: the build context
 * (an upload unpacked, or a URL fetched by the builder as an embedded build
 * fetches it, its Dockerfile read from inside), and the directories of named
 * contexts (local ones and OCI layouts, each unpacked once however many
 * names use it). On failure nothing stays behind.
 */
export async function unpackBuildContexts(store: ServiceStore, req: QueuedRequest, tmpRoot: string, fetch: UrlContextDeps, signal?: AbortSignal): Promise<UnpackedBuild> {
  const unpacked: Array<{ remove(): Promise<void> }> = [];
  const remove = async () => {
    for (const u of unpacked.reverse()) await u.remove();
  };
  const unpack = async (digest: Digest) => {
    const u = await unpackContext(store, digest, tmpRoot, signal);
    unpacked.push(u);
    return u.dir;
  };
  try {
    const base = await mainContext(req, unpack, fetch, (r) => unpacked.push(r), signal);
    const dirs = new Map<Digest, Promise<string>>();
    const named: Record<string, NamedContext> = {};
    for (const [name, c] of Object.entries(req.namedContexts ?? {})) {
      if ((c.type === 'local' || c.type === 'oci-layout') && 'digest' in c.source) {
        const d = c.source.digest;
        if (!dirs.has(d)) dirs.set(d, unpack(d));
        named[name] = { ...c, source: { dir: await dirs.get(d)! } };
      } else named[name] = c;
    }
    return { request: { ...base, ...(req.namedContexts ? { namedContexts: named } : {}) }, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}

/** The build context as a directory: an upload unpacked, or a URL fetched with its Dockerfile read from inside it. */
async function mainContext(
  req: QueuedRequest,
  unpack: (digest: Digest) => Promise<string>,
  fetch: UrlContextDeps,
  keep: (r: { remove(): Promise<void> }) => void,
  signal?: AbortSignal,
): Promise<BuildRequest> {
  const { context, ...rest } = req;
  if ('digest' in context) return { ...rest, context: { dir: await unpack(context.digest) } };
  const remote = await fetch.builder.openContext(context.url, { secrets: fetch.secrets, ...(signal ? { signal } : {}) });
  keep({ remove: async () => remote[Symbol.asyncDispose]() });
  // The Dockerfile is held to the build's limit: the worker's, or the token's below it.
  const maxBytes = Math.min(fetch.builder.limits.maxDockerfileBytes, req.limits?.maxDockerfileBytes ?? Infinity);
  return remoteContextRequest({ ...rest, context: { dir: remote.dir } }, remote, context.url, context.file, maxBytes);
}
