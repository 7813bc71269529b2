import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { BuildRequest } from '../core/build.js';
import { BuildliteError, CodedError } from '../core/errors.js';
import type { BuildLimits } from '../core/limits.js';
import { isGitUrl, parseGitUrl } from '../core/git-url.js';
import { redactUrlCredentials } from '../core/redact.js';
import { resolveInRoot } from '../core/safe-path.js';
import { readAllBounded } from '../core/streams.js';
import { AddressPolicy } from './address-policy.js';
import { HTTP_DEFAULTS, HttpPolicyError, resolveAllowed, systemResolve, type HttpPolicy, type Resolve } from './http-fetch.js';
import type { Lease } from '../cache/index.js';
import { gitSourceDef } from './dockerfile/index.js';
import { Graph } from './graph/index.js';
import { detectArchive, extractArchive, type HttpFetcher, type Solver } from './solver/index.js';

/** A build context fetched from a URL, as a local directory for the build. */
export interface RemoteContext extends AsyncDisposable {
  readonly dir: string;
  /** The URL was a Dockerfile, not an archive: the context holds only it, as `Dockerfile` (BuildKit's rule). */
  readonly dockerfileOnly: boolean;
}

export interface RemoteContextDeps {
  readonly solver: Solver;
  readonly http?: HttpFetcher;
  readonly tmpDir: string;
  /** The builder's limits: fetching and unpacking a context is bounded like a build. */
  readonly limits: BuildLimits;
  takeLease(): Promise<Lease>;
}

export interface RemoteContextOptions {
  readonly secrets?: ReadonlyMap<string, Buffer>;
  readonly ssh?: ReadonlyMap<string, string>;
  readonly signal?: AbortSignal;
}

/**
 * `buildlite build URL`: a git repository (`#ref:subdir`) or a tarball (or a
 * bare Dockerfile) over http(s), fetched by this builder under its URL policy
 * (docs/security.md T7), never by the client. A git context is a git source
 * like ADD's: resolved with ls-remote, cached by commit (the same commit is
 * not fetched again), and shown as a read-only view of its snapshot. A tarball
 * is unpacked with the same path checks as layers into a private directory.
 */
export async function openRemoteContext(deps: RemoteContextDeps, url: string, opts: RemoteContextOptions = {}): Promise<RemoteContext> {
  return isGitUrl(url) ? openGitContext(deps, url, opts) : openHttpContext(deps, url, opts.signal);
}

async function openGitContext(deps: RemoteContextDeps, url: string, opts: RemoteContextOptions): Promise<RemoteContext> {
  let def;
  try {
    def = gitSourceDef(url);
  } catch (err) {
    throw new CodedError('INVALID_ARGUMENT', `build context: ${(err as Error).message}`, { cause: err });
  }
  const graph = new Graph();
  const d = graph.add(def, [], { name: `[internal] load git source ${redactUrlCredentials(url)}` });
  // The lease holds the commit's snapshot for as long as the build reads it.
  const lease = await deps.takeLease();
  try {
    const results = await deps.solver.solve(graph, d, {
      lease,
      secrets: opts.secrets ?? new Map(),
      ...(opts.ssh ? { ssh: opts.ssh } : {}),
      noCache: false,
      noCacheStages: new Set(),
      emit: () => undefined,
      ...(opts.signal ? { signal: opts.signal } : {}),
      limits: deps.limits,
    });
    const view = await deps.solver.view(results.get(d)!.layers, lease, { limits: deps.limits, ...(opts.signal ? { signal: opts.signal } : {}) });
    const dispose = async () => {
      try {
        await view[Symbol.asyncDispose]();
      } finally {
        await lease.release();
      }
    };
    return { dir: view.dir, dockerfileOnly: false, [Symbol.asyncDispose]: dispose };
  } catch (err) {
    await lease.release();
    throw err;
  }
}

async function openHttpContext(deps: RemoteContextDeps, url: string, signal?: AbortSignal): Promise<RemoteContext> {
  if (!deps.http) throw new CodedError('PERMISSION_DENIED', 'fetching URLs is not enabled on this builder');
  const dir = await mkdtemp(path.join(deps.tmpDir, 'context-'));
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    // Fetched beside the context, not in it: the download is gone once unpacked.
    const fetched = await mkdtemp(path.join(deps.tmpDir, 'context-fetch-'));
    try {
      const file = path.join(fetched, 'context');
      await deps.http.fetchToFile(url, file, signal ? { signal } : {});
      if (await detectArchive(file, signal)) {
        await extractArchive(file, dir, undefined, signal);
        return { dir, dockerfileOnly: false, [Symbol.asyncDispose]: remove };
      }
      await rename(file, path.join(dir, 'Dockerfile'));
      return { dir, dockerfileOnly: true, [Symbol.asyncDispose]: remove };
    } finally {
      await rm(fetched, { recursive: true, force: true });
    }
  } catch (err) {
    await remove();
    throw err;
  }
}

/**
 * The request for a context fetched from a URL: the Dockerfile is read from
 * inside it (`-f` is a path in the context, as with docker build and a remote
 * context; a URL that was a Dockerfile is the Dockerfile), resolved inside the
 * context so a symlink in a repository cannot make it a file of this machine.
 * The embedded CLI and a service worker both build a URL context through this.
 */
export async function remoteContextRequest(req: BuildRequest, ctx: RemoteContext, url: string, file: string, maxBytes: number): Promise<BuildRequest> {
  const name = ctx.dockerfileOnly ? 'Dockerfile' : file;
  const at = await resolveInRoot(ctx.dir, name);
  const stream = createReadStream(at);
  // Read within the Dockerfile limit: a repository's "Dockerfile" may be anything.
  const dockerfile = (
    await readAllBounded(stream, maxBytes, `the Dockerfile ${name}`).catch((err: NodeJS.ErrnoException) => {
      if (err instanceof BuildliteError) throw err;
      throw new CodedError('NOT_FOUND', `the context ${redactUrlCredentials(url)} has no Dockerfile ${name} (${err.code ?? err.message}): name it with -f, relative to the context`);
    })
  ).toString('utf8');
  // <Dockerfile>.dockerignore wins over the context's .dockerignore, as for a local context.
  const ignore = await readFile(`${at}.dockerignore`, 'utf8').catch(() => undefined);
  return { ...req, dockerfile, dockerfileName: path.posix.basename(name), ...(ignore !== undefined ? { dockerignore: ignore } : {}), context: { dir: ctx.dir } };
}

/**
 * What a build service checks before it queues a URL context, so a URL its
 * workers would refuse is refused at submit with nothing queued: the form
 * (a git URL as git sources read it, else http(s); credentials in the URL are
 * refused, as the fetch refuses them) and every address of its host under the
 * same URL policy (docs/security.md T7) the fetch applies. The worker checks
 * again when it connects: this is the early answer, not the guard.
 */
export async function checkContextUrl(url: string, policy: HttpPolicy = {}, resolveName: Resolve = systemResolve): Promise<void> {
  const what = `build context ${redactUrlCredentials(url).slice(0, 300)}`;
  let host: string;
  if (isGitUrl(url)) {
    try {
      host = parseGitUrl(url).host;
    } catch (err) {
      throw new CodedError('INVALID_ARGUMENT', `build context: ${(err as Error).message}`, { cause: err });
    }
  } else {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new CodedError('INVALID_ARGUMENT', `${what}: not a URL (want a git URL or an http(s) URL of a tarball or Dockerfile)`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new CodedError('INVALID_ARGUMENT', `${what}: ${u.protocol} URLs are not fetched (want a git URL, or http or https)`);
    if (u.username !== '' || u.password !== '') throw new HttpPolicyError(`${what}: URLs with credentials are refused; credentials are never sent (a private git repository takes a GIT_AUTH_TOKEN secret)`);
    host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  }
  const addresses = new AddressPolicy({ allowPrivate: policy.allowPrivate ?? false, allowNetworks: policy.allowNetworks ?? [] });
  await resolveAllowed(host, { addresses, resolveName, what, hint: policy.deniedHint ?? HTTP_DEFAULTS.deniedHint });
}
