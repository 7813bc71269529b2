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

/** A secret by id only; values travel beside the request, never inside it. */
export interface SecretRef {
  readonly id: string;
}

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
  readonly platform?: Platform;
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
  | { readonly type: 'warning'; readonly message: string; readonly range?: SourceRange }
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
  readonly imageDigest: Digest;
  readonly configDigest: Digest;
  readonly pushed: readonly string[];
  readonly cache: { readonly hits: number; readonly misses: number };
}
