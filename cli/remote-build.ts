import { createReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { BuildliteError } from '../core/errors.js';
import type { BuildliteClient, SubmitRequest } from '../api/index.js';
import type { ParsedBuild } from './parsed-build.js';
import { packContext } from './context-pack.js';
import { namedContextsForServer } from './named-uploads.js';
import { followBuild, type Followed } from './follow.js';
import { Interrupts } from './interrupts.js';
import { writeMetadata } from './metadata.js';
import { createRenderer, type Renderer } from './progress.js';
import { connect } from './remote.js';
import { UsageError } from './usage.js';

/**
 * How long an interrupted client waits for the server to accept its cancel,
 * then for the build's last event. A CI runner that sends SIGTERM usually
 * sends SIGKILL some seconds later; the cancel has to land before that.
 */
export const CANCEL_WAIT = { acceptMs: 5_000, endMs: 10_000 } as const;

/**
 * Remote mode (`build --server ADDR`, or BUILDLITE_SERVER): packs the
 * context, uploads it unless the server already has that digest (a URL
 * context is not uploaded: the worker fetches it), submits, and
 * renders the build's events exactly as a local build does, resuming the
 * event stream from the last seq when it drops. SIGINT/SIGTERM cancel the
 * build on the server before the client exits; `--detach` prints the build id
 * and leaves the build running. Exit codes as local mode: 0 built, 1 failed;
 * 128+N after signal N.
 */
export async function runRemoteBuild(p: ParsedBuild): Promise<number> {
  for (const o of p.request.outputs ?? []) {
    if (o.type !== 'registry' && o.type !== 'image') throw new UsageError(`--output type=${o.type} writes on the server's machine: a remote build can only push (--push or type=registry)`, 'build');
  }
  for (const c of [...(p.request.cacheFrom ?? []), ...(p.request.cacheTo ?? [])]) {
    if (c.type !== 'registry') throw new UsageError(`--cache-from/--cache-to type=${c.type} would be on the server's machine: a remote build uses registry caches (type=registry,ref=REF)`, 'build');
  }
  const ctx = p.request.context;
  const contextDir = 'dir' in ctx ? ctx.dir : undefined;
  if (!p.remoteContext && contextDir === undefined) throw new UsageError('a remote build needs a context directory', 'build');
  const { client, server } = connect('build', { server: p.server, token: p.token });
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'buildlite-ctx-'));
  using interrupts = new Interrupts();
  const renderer = createRenderer(p.progress, p.request.dockerfile);
  try {
    let buildId: string;
    try {
      const named = p.request.namedContexts ? await namedContextsForServer(client, p.request.namedContexts, tmp, interrupts.signal) : [];
      const req = { ...toSubmit(p), ...(named.length ? { named_contexts: named } : {}) };
      if (p.remoteContext) {
        // The worker fetches a URL context (as BuildKit's daemon does): only the URL and the -f path inside it travel.
        const submitted = await client.submit({ ...req, dockerfile: '', context_url: p.remoteContext.url, context_file: p.remoteContext.file }, undefined, interrupts.signal);
        buildId = submitted.buildId;
      } else if (contextDir !== undefined) {
        const packed = await packContext(contextDir, path.join(tmp, 'context.tar'), p.request.dockerignore);
        const present = await client.hasContext(packed.digest);
        const submitted = present
          ? await client.submit({ ...req, context_digest: packed.digest }, undefined, interrupts.signal)
          : await client.submit(req, createReadStream(packed.file), interrupts.signal);
        buildId = submitted.buildId;
      } else throw new UsageError('a remote build needs a context directory', 'build');
    } catch (err) {
      // Interrupted during the upload: the server drops the call (and cancels a build it had just queued).
      if (interrupts.received) {
        renderer.close();
        process.stderr.write('interrupted before the build was queued: nothing runs\n');
        return interrupts.exitCode;
      }
      throw err;
    }
    const ref = { buildId, server };
    if (p.detach) {
      process.stdout.write(`${buildId}\n`);
      return 0;
    }
    renderer.attached(ref);
    let followed = await followBuild(client, buildId, { fromSeq: 0, server, onEvent: (ev) => renderer.event(ev), signal: interrupts.signal });
    if (followed.interrupted) followed = await cancelAndDrain(client, buildId, followed, server, renderer);
    renderer.close();
    if (p.metadataFile) await writeMetadata(p.metadataFile, p, followed, ref);
    if (interrupts.received) return interrupts.exitCode;
    if (followed.error || !followed.result) return 1;
    if (p.iidfile) await writeFile(p.iidfile, followed.result.imageDigest);
    if (p.progress === 'quiet') process.stdout.write(`${followed.result.imageDigest}\n`);
    return 0;
  } finally {
    renderer.close();
    client.close();
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * The client was interrupted: cancel the build on the server (a cancelled CI
 * job must not publish), then show its last events, each within a bound.
 */
async function cancelAndDrain(client: BuildliteClient, buildId: string, seen: Followed, server: string, renderer: Renderer): Promise<Followed> {
  renderer.note(`cancelling build ${buildId} on ${server}`);
  try {
    await withDeadline(client.cancel(buildId), CANCEL_WAIT.acceptMs, 'the server did not answer the cancel');
  } catch (err) {
    renderer.note(`could not cancel build ${buildId}: ${(err as BuildliteError).message}; it may still run (buildlite cancel ${buildId})`);
    return seen;
  }
  const stop = AbortSignal.timeout(CANCEL_WAIT.endMs);
  const rest = await followBuild(client, buildId, { fromSeq: seen.lastSeq, server, onEvent: (ev) => renderer.event(ev), signal: stop }).catch(() => seen);
  if (rest.interrupted) renderer.note(`build ${buildId} did not end within ${CANCEL_WAIT.endMs / 1000}s of the cancel; see buildlite inspect ${buildId}`);
  return rest;
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms / 1000}s`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** The parsed flags as a proto BuildRequest (secrets with their values: they travel only in this call). */
export function toSubmit(p: ParsedBuild): SubmitRequest {
  const r = p.request;
  const caches = (specs: ParsedBuild['request']['cacheFrom']) =>
    (specs ?? []).flatMap((c) => (c.type === 'registry' ? [{ type: c.type, ref: c.ref, mode: c.mode ?? '', ignore_error: c.ignoreError ?? false }] : []));
  return {
    dockerfile: r.dockerfile,
    dockerfile_name: r.dockerfileName ?? 'Dockerfile',
    dockerignore: r.dockerignore ?? '',
    build_args: Object.entries(r.buildArgs ?? {}).map(([key, value]) => ({ key, value })),
    target: r.target ?? '',
    labels: Object.entries(r.labels ?? {}).map(([key, value]) => ({ key, value })),
    outputs: (r.outputs ?? []).flatMap((o) => (o.type === 'registry' || o.type === 'image' ? [{ type: o.type, refs: [...o.refs] }] : [])),
    cache_from: caches(r.cacheFrom),
    cache_to: caches(r.cacheTo),
    no_cache: r.noCache ?? false,
    no_cache_filter: [...(r.noCacheFilter ?? [])],
    network: r.network ?? 'default',
    allow: [...(r.allow ?? [])],
    platforms: (r.platforms ?? []).map((x) => ({ os: x.os, architecture: x.architecture, variant: x.variant ?? '' })),
    secrets: [...p.secrets].map(([id, value]) => ({ id, value })),
    ...(r.sourceDateEpoch !== undefined ? { source_date_epoch: r.sourceDateEpoch, has_source_date_epoch: true } : {}),
  };
}
