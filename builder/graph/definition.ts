import type { Digest } from '../../core/digest.js';
import type { SourceRange } from '../../core/errors.js';
import type { ContainerConfig, HistoryEntry, Platform } from '../../core/oci.js';
import type { Graph } from './graph.js';

/**
 * A history entry of the target image. `vertex` names the vertex whose layer
 * this entry describes; entries whose vertex produced no layer (or that have
 * none: ENV, CMD, ...) are exported with `empty_layer: true`.
 * Entries inherited from a base image carry `inherited: true` and keep their own `empty_layer`.
 */
export interface HistoryStep extends HistoryEntry {
  readonly vertex?: Digest;
  readonly inherited?: boolean;
}

export interface Warning {
  readonly message: string;
  readonly range?: SourceRange;
  /** A build check's rule name (BuildKit's, e.g. `JSONArgsRecommended`), and where it is documented. */
  readonly rule?: string;
  readonly url?: string;
  /** `# check=error=true`: the build fails once every warning has been reported. */
  readonly fatal?: true;
}

/** What the frontend hands to the solver: a graph and what the target image looks like. */
export interface BuildDefinition {
  readonly graph: Graph;
  /** The vertex whose filesystem is the target's rootfs; null for an empty scratch image. */
  readonly root: Digest | null;
  readonly platform: Platform;
  /** The target image's runtime config (Env, Cmd, ...). */
  readonly config: ContainerConfig;
  readonly history: readonly HistoryStep[];
  readonly warnings: readonly Warning[];
  /** Image author (MAINTAINER), when the Dockerfile sets one. */
  readonly author?: string;
}

/** What the frontend needs to know about a base image to give FROM its meaning (ENV, ONBUILD, ...). */
export interface ResolvedImage {
  /** Pinned reference, e.g. `docker.io/library/busybox@sha256:…`. */
  readonly ref: string;
  readonly config: ContainerConfig;
  readonly history: readonly HistoryEntry[];
  readonly platform: Platform;
}

export interface ImageResolver {
  resolve(ref: string, platform: Platform, signal?: AbortSignal): Promise<ResolvedImage>;
}

/**
 * What a named context (`--build-context`) gives the frontend, as the builder
 * prepared it: a local source (by the name the solver maps to a directory,
 * with its .dockerignore), an image reference the resolver knows, or a git URL.
 */
export type NamedSource =
  | { readonly kind: 'local'; readonly name: string; readonly excludes: readonly string[] }
  | { readonly kind: 'image'; readonly ref: string }
  | { readonly kind: 'git'; readonly url: string };
