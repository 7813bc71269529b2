import type { Digest } from './digest.js';
import type { SourceRange, WireError } from './errors.js';
import type { BuildLimits } from './limits.js';
import type { Platform } from './oci.js';

/** Where an image goes once built. */
export type OutputSpec =
  | { readonly type: 'registry'; readonly refs: readonly string[] }
  | { readonly type: 'oci'; readonly dest: string; readonly refs?: readonly string[] }
  | { readonly type: 'local'; readonly dest: string }
  | { readonly type: 'tar'; readonly dest: string }
  | { readonly type: 'image'; readonly refs: readonly string[] };

export type CacheSpec =
  | { readonly type: 'registry'; readonly ref: string; readonly mode?: 'min' | 'max'; readonly ignoreError?: boolean }
  | { readonly type: 'local'; readonly dir: string; readonly mode?: 'min' | 'max'; readonly ignoreError?: boolean };

export type NetworkMode = 'default' | 'none' | 'host';

/**
 * What a build may ask for beyond the sandbox; each also needs the operator's
 * grant (docs/security.md T2): `network.host` for RUN --network=host,
 * `security.insecure` for RUN --security=insecure.
 */
export const ENTITLEMENTS = ['network.host', 'security.insecure'] as const;
export type Entitlement = (typeof ENTITLEMENTS)[number];

/** A secret by id only; values travel beside the request, never inside it. */
export interface SecretRef {
  readonly id: string;
}

/** A directory of files a build reads: a local directory (embedded mode) or the digest of an uploaded tar (service mode). */
export type ContextSource = { readonly dir: string } | { readonly digest: Digest };

/**
 * `--build-context NAME=VALUE` (BuildKit's named contexts): what `FROM NAME`,
 * `COPY --from=NAME` and `RUN --mount=from=NAME` resolve to, before stages and
 * images of that name (a stage of that name is replaced by it).
 */
export type NamedContext =
  /** A directory, like the build context (its own .dockerignore applies). */
  | { readonly type: 'local'; readonly source: ContextSource }
  /** `docker-image://REF`: an image from a registry. */
  | { readonly type: 'image'; readonly ref: string }
  /** `oci-layout://PATH[:TAG|@DIGEST]`: an image in an OCI layout directory; without either, its only image. */
  | { readonly type: 'oci-layout'; readonly source: ContextSource; readonly tag?: string; readonly digest?: Digest }
  /** A git URL (`https://host/repo.git#ref:subdir`, `git@host:repo`): a git source, like ADD's. */
  | { readonly type: 'git'; readonly url: string };

/** The request every edge agrees on: CLI, API, queue and builder. JSON-safe. */
export interface BuildRequest {
  /** Dockerfile text. */
  readonly dockerfile: string;
  /** File name used in messages, e.g. `Dockerfile`. */
  readonly dockerfileName?: string;
  /** Dockerfile-specific .dockerignore text, which wins over the context's own. */
  readonly dockerignore?: string;
  /** Embedded mode: a local directory. Service mode: the digest of an uploaded context. */
  readonly context: { readonly dir: string } | { readonly digest: Digest };
  readonly buildArgs?: Readonly<Record<string, string>>;
  readonly target?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly outputs?: readonly OutputSpec[];
  readonly cacheFrom?: readonly CacheSpec[];
  readonly cacheTo?: readonly CacheSpec[];
  readonly noCache?: boolean;
  readonly noCacheFilter?: readonly string[];
  readonly secrets?: readonly SecretRef[];
  readonly network?: NetworkMode;
  /** Entitlements the build asks for, e.g. `network.host`; the operator must also allow them. */
  readonly allow?: readonly string[];
  /** Target platforms, normalised (core/platform.ts `targetPlatforms`); absent or empty: the builder's host platform. Several make an image index. */
  readonly platforms?: readonly Platform[];
  /** Seconds since the epoch; clamps every timestamp for reproducible images. */
  readonly sourceDateEpoch?: number;
  /** Registries that may be spoken to over plain HTTP (host[:port]). */
  readonly insecureRegistries?: readonly string[];
  /**
   * What the service asks for this build (its defaults merged with the
   * token's overrides): set by the API, never by a client. The builder cuts
   * it to its own limits (`clampLimits`); unset fields take those limits.
   */
  readonly limits?: Partial<BuildLimits>;
  /** `--build-context`, by name. */
  readonly namedContexts?: Readonly<Record<string, NamedContext>>;
}

/** `cancelled`: stopped before it ended (the build was cancelled, or another step failed). */
export type VertexState = 'started' | 'cached' | 'completed' | 'errored' | 'cancelled';

/** Events of one build, in order; `seq` lets a client resume without gaps or duplicates. */
export type BuildEventBody =
  | {
      readonly type: 'vertex';
      readonly vertex: Digest;
      readonly name: string;
      readonly state: VertexState;
      readonly range?: SourceRange;
      readonly stage?: string;
      readonly error?: string;
      /** Milliseconds since the epoch. */
      readonly at: number;
    }
  | { readonly type: 'log'; readonly vertex: Digest; readonly stream: 'stdout' | 'stderr'; readonly data: string }
  | { readonly type: 'progress'; readonly id: string; readonly action: string; readonly current: number; readonly total?: number }
  | {
      readonly type: 'warning';
      readonly message: string;
      readonly range?: SourceRange;
      /** A build check's rule name (e.g. `JSONArgsRecommended`) and where it is documented. */
      readonly rule?: string;
      readonly url?: string;
    }
  | { readonly type: 'result'; readonly result: BuildResult }
  | { readonly type: 'error'; readonly error: WireError };

export type BuildEvent = BuildEventBody & { readonly seq: number };

/**
 * Stands for the build service's address in the text of events (the hint
 * `buildlite logs ... --server ADDR` of a service build): a worker does not
 * know the address a client reached the service by, so the client puts in
 * the one it used.
 */
export const SERVER_PLACEHOLDER = 'ADDR';

export interface BuildResult {
  /** The manifest's digest, or an image index's for several platforms. */
  readonly imageDigest: Digest;
  /** The image config's digest; absent for an index (each platform's is in `platforms`). */
  readonly configDigest?: Digest;
  /** A multi-platform build: each platform's image, in the index's order. */
  readonly platforms?: ReadonlyArray<{ readonly platform: string; readonly imageDigest: Digest; readonly configDigest: Digest }>;
  readonly pushed: readonly string[];
  readonly cache: { readonly hits: number; readonly misses: number };
}
