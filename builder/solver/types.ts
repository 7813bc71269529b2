import type { BuildEventBody } from '../../core/build.js';
import type { ContentStore } from '../../core/content.js';
import type { Digest } from '../../core/digest.js';
import type { BuildLimits } from '../../core/limits.js';
import type { ImageConfig, Platform } from '../../core/oci.js';
import type { CacheKeyIndex, LayerRef, CacheMounts } from '../../cache/index.js';
import type { Executor } from '../executor/index.js';
import type { GitSourceDef, Graph, Vertex } from '../graph/index.js';
import type { Snapshotter } from '../snapshot/index.js';
import type { DiskBudget } from './budget.js';
import type { ContextHasher } from './context-sums.js';
import type { Materializer } from './materialize.js';

/** Pulls a pinned image's blobs into the store; wired to registry-client by builder/index.ts. */
export interface ImageFetcher {
  pull(
    ref: string,
    platform: Platform,
    store: ContentStore,
    opts: {
      signal?: AbortSignal;
      onProgress?: (id: string, current: number, total?: number) => void;
      /**
       * Shown the image's layers once its manifest is known, before any is
       * fetched, with those missing from the store; a throw refuses the pull.
       */
      admit?: (layers: readonly LayerRef[], missing: readonly LayerRef[]) => void;
    },
  ): Promise<{ config: ImageConfig; layers: LayerRef[] }>;
}

/** What one fetch produced: the content digest, and the file name the server suggested (a safe base name), if any. */
export interface FetchedFile {
  readonly digest: Digest;
  readonly filename?: string;
}

/** Fetches ADD <url> sources; wired by builder/index.ts with the operator's network policy. */
export interface HttpFetcher {
  /** `meter` is shown the body's bytes as they arrive, before they are written; a throw stops the fetch (and the file goes). */
  fetchToFile(url: string, dest: string, opts: { signal?: AbortSignal; checksum?: Digest; meter?: (total: number, chunk: number) => void }): Promise<FetchedFile>;
}

/** What a git source names now: the commit, and the full ref it was found under (a kept `.git` checks it out as that branch or tag). */
export interface ResolvedGit {
  readonly commit: string;
  readonly ref?: string;
}

/** What a git fetch may authenticate with: the build's secrets (GIT_AUTH_TOKEN, GIT_AUTH_HEADER) and ssh agents. */
export interface GitAuth {
  readonly secrets: ReadonlyMap<string, Buffer>;
  readonly ssh: ReadonlyMap<string, string>;
}

/** Fetches git sources (`git` CLI) under the operator's network policy; wired by builder/index.ts. */
export interface GitFetcher {
  /** The commit the source names now: `git ls-remote`, unless the ref is a commit id. */
  resolve(def: GitSourceDef, auth: GitAuth, signal?: AbortSignal): Promise<ResolvedGit>;
  /** Fetch that commit and write its tree (the subdir's, `.git` when kept) into `dir`, which is empty. */
  checkout(def: GitSourceDef, at: ResolvedGit, dir: string, auth: GitAuth, signal?: AbortSignal): Promise<void>;
}

/** Everything the solver needs from the machine; built once per builder, shared by builds. */
export interface SolverDeps {
  readonly store: ContentStore;
  readonly index: CacheKeyIndex;
  readonly snapshotter: Snapshotter;
  readonly executor: Executor;
  readonly images: ImageFetcher;
  readonly http?: HttpFetcher;
  readonly git?: GitFetcher;
  readonly hasher: ContextHasher;
  readonly cacheMounts: CacheMounts;
  /** Scratch space for mount points and fetched files. */
  readonly tmpDir: string;
  /** The operator's half of the network.host grant (docs/security.md T2); the build's half is SolveOptions.allow. */
  readonly allowHostNetwork?: boolean;
  /** The operator's half of the security.insecure grant; the build's half is SolveOptions.allow. */
  readonly allowSecurityInsecure?: boolean;
}

/** Per-build inputs to the solver. Secret values live here only, never in events or keys. */
export interface SolveOptions {
  readonly contextDir?: string;
  /** Directories of the other local sources (named contexts), by source name. */
  readonly localDirs?: ReadonlyMap<string, string>;
  readonly secrets: ReadonlyMap<string, Buffer>;
  /** ssh agent sockets on this machine by id (`--ssh`); their paths never enter events, keys or layers. */
  readonly ssh?: ReadonlyMap<string, string>;
  readonly noCache: boolean;
  readonly noCacheStages: ReadonlySet<string>;
  readonly sourceDateEpoch?: number;
  readonly debugCache?: boolean;
  /** Entitlements the build asked for (`network.host`); the operator must also allow each. */
  readonly allow?: readonly string[];
  /**
   * The build's lease: the solver adds every blob, cache key and snapshot it
   * uses or creates, so GC (here or in another process) leaves them alone.
   */
  readonly lease?: { add(resources: readonly string[]): Promise<void> };
  /** Records imported from `--cache-from`, consulted when the local index misses. */
  readonly imported?: ImportedRecords;
  readonly emit: (event: BuildEventBody) => void;
  readonly signal?: AbortSignal;
  /** This build's limits (the builder's, cut by the request's); default BUILD_LIMIT_DEFAULTS. */
  readonly limits?: BuildLimits;
  /** What this build has written to the state directory; default a fresh one at `limits.maxBuildDiskBytes`. */
  readonly disk?: DiskBudget;
}

/** The options of a running solve: every default filled in. */
export type RunOptions = SolveOptions & { readonly signal: AbortSignal; readonly limits: BuildLimits; readonly disk: DiskBudget };

/** Cache records from elsewhere (a registry or a local cache dir); their blobs may be fetched lazily. */
export interface ImportedRecords {
  /** `createdAt` (ms) is kept so an image assembled from imported steps gets the same digest as the original. */
  get(key: Digest): { readonly layers: readonly LayerRef[]; readonly createdAt?: number } | undefined;
}

/** What a vertex produced: the full layer chain of its filesystem, base first. */
export interface VertexResult {
  readonly key: Digest;
  readonly layers: readonly LayerRef[];
  readonly cached: boolean;
  /** True when this vertex added a layer on top of its root input. */
  readonly ownLayer: boolean;
  /**
   * For http sources: the fetched file (in tmpDir) and its content digest;
   * `name` when the server named it (the URL named no file), for copies into a directory.
   */
  readonly file?: { readonly path: string; readonly digest: Digest; readonly name?: string };
}

/** What an op needs while it runs one vertex. */
export interface OpContext {
  readonly deps: SolverDeps;
  readonly materializer: Materializer;
  readonly opts: RunOptions;
  readonly vertex: Vertex;
  readonly graph: Graph;
}

/** Where a local source's files are: the build context, or a named context's directory. */
export function localDir(opts: Pick<SolveOptions, 'contextDir' | 'localDirs'>, name: string): string | undefined {
  return name === 'context' ? opts.contextDir : opts.localDirs?.get(name);
}
