import type { Digest } from '../../core/digest.js';
import type { NetworkMode } from '../../core/build.js';
import type { Platform } from '../../core/oci.js';
import { normalizePlatform } from '../../core/platform.js';

/**
 * The build graph is plain data (BuildKit's LLB, in spirit). A vertex
 * definition holds everything that changes its output and nothing else:
 * names, Dockerfile ranges and progress labels live in the graph's side maps,
 * so they can never change a digest. Inputs are referred to by position in the
 * vertex's `inputs` array.
 */
export type VertexDef = ImageSourceDef | LocalSourceDef | HttpSourceDef | GitSourceDef | ExecDef | FileDef | MergeDef;

/** A base image. `ref` is fully qualified and, once resolved, pinned: `docker.io/library/busybox@sha256:…`. */
export interface ImageSourceDef {
  readonly kind: 'image';
  readonly ref: string;
  readonly platform: Platform;
}

/** The build context (or another named local source). Its content enters keys through the file ops that read it. */
export interface LocalSourceDef {
  readonly kind: 'local';
  readonly name: string;
  /** .dockerignore patterns, in file order (negations included). */
  readonly excludes: readonly string[];
}

/** ADD <url>: one file fetched over HTTP(S). */
export interface HttpSourceDef {
  readonly kind: 'http';
  readonly url: string;
  readonly checksum?: Digest;
  /** Base name the file gets; never a path. */
  readonly filename: string;
  /**
   * The URL names no file (`https://host/`): the server's Content-Disposition
   * file name, when it gives a usable one, replaces `filename` in the image
   * (Docker's classic builder; BuildKit writes `__unnamed__`). Its name then
   * enters the source's cache key with the content.
   */
  readonly nameFromResponse?: true;
  /** Octal permission bits of the fetched file (ADD gives 0600). */
  readonly mode: number;
}

/**
 * ADD <git url>, a git build context or named context: the tree of one commit,
 * as a filesystem. Which commit is learnt when the build runs (`git
 * ls-remote`), and the commit, not the remote, keys the cache (as BuildKit):
 * the same commit is a hit without fetching. Credentials never appear here;
 * they come from the build's secrets and ssh agents when it runs.
 */
export interface GitSourceDef {
  readonly kind: 'git';
  /** What git fetches: no fragment, no query, no password (core/git-url.ts). */
  readonly remote: string;
  /** Branch, tag, full ref or commit; absent: the remote's HEAD. */
  readonly ref?: string;
  /** Directory of the repository that becomes the root of the source. */
  readonly subdir?: string;
  /** Keep `.git` (only without a subdir, as BuildKit). */
  readonly keepGitDir: boolean;
  /** Expected commit (a hex prefix): the build fails before fetching when the ref names another. */
  readonly checksum?: string;
}

/** A user spec as written in USER or --chown: name or id, optionally `:group`. Resolved at run time against the rootfs. */
export interface UserSpec {
  readonly user: string;
  readonly group?: string;
}

export type ExecMount =
  | {
      readonly type: 'bind';
      readonly target: string;
      /** Input index; null means the build context is not involved and source is the rootfs of the step itself. */
      readonly input: number;
      readonly source: string;
      readonly readonly: boolean;
    }
  | {
      readonly type: 'cache';
      readonly target: string;
      /** Cache identity; defaults to the target. Dropped from cache keys (it names storage, not content). */
      readonly id: string;
      readonly sharing: 'shared' | 'private' | 'locked';
      readonly input?: number;
      readonly source?: string;
      readonly mode: number;
      readonly uid: number;
      readonly gid: number;
      readonly readonly: boolean;
    }
  | {
      readonly type: 'secret';
      /** File target; absent when the secret goes into env only. */
      readonly target?: string;
      readonly env?: string;
      readonly id: string;
      readonly required: boolean;
      readonly mode: number;
      readonly uid: number;
      readonly gid: number;
    }
  | {
      /** A forwarded ssh agent socket (BuildKit's type=ssh); the agent's host path is never in the graph. */
      readonly type: 'ssh';
      readonly target: string;
      readonly id: string;
      readonly required: boolean;
      readonly mode: number;
      readonly uid: number;
      readonly gid: number;
    }
  | {
      readonly type: 'tmpfs';
      readonly target: string;
      readonly size?: number;
    };

/** RUN. Input 0 is the root filesystem (absent for a RUN on scratch). */
export interface ExecDef {
  readonly kind: 'exec';
  readonly args: readonly string[];
  /** KEY=VALUE, in order. Proxy variables are here but scrubbed from cache keys. */
  readonly env: readonly string[];
  readonly cwd: string;
  readonly user: UserSpec;
  readonly network: NetworkMode;
  readonly mounts: readonly ExecMount[];
  /** True when input 0 exists; false for scratch. */
  readonly hasRoot: boolean;
  /**
   * RUN --security=insecure: the step runs with what builder/executor/insecure.ts
   * grants, once the operator and the build allow it. Absent for the sandbox, so
   * the keys of every other step stay as they were.
   */
  readonly security?: 'insecure';
  /**
   * The platform the step's programs are built for (its stage's), when it is
   * not linux/amd64: what the builder checks it can run (natively or under
   * emulation) before any step starts, and part of the key even for a step
   * on scratch. Absent for linux/amd64, the platform every key was made for
   * before multi-platform builds, so those keys stay as they were.
   */
  readonly platform?: Platform;
}

/** ExecDef's `platform` field for a stage's platform: absent for linux/amd64 (see ExecDef). */
export function execPlatform(p: Platform): { platform?: Platform } {
  const n = normalizePlatform(p);
  return n.os === 'linux' && n.architecture === 'amd64' && n.variant === undefined ? {} : { platform: n };
}

export interface CopyAction {
  readonly op: 'copy';
  /** Input index that holds the sources (context, a stage, an image, an http source). */
  readonly src: number;
  /** Source paths as written (may contain wildcards), relative to the source root. */
  readonly paths: readonly string[];
  /** Absolute destination in the image; a trailing `/` means "into this directory". */
  readonly dest: string;
  readonly excludes: readonly string[];
  readonly chown?: UserSpec;
  /** --chmod as given: octal (`755`) or chmod(1)'s symbolic form (`u+x,go-w`), see core/file-mode.ts. */
  readonly chmod?: string;
  /** ADD semantics: local tar archives are extracted (false for COPY, and for ADD --unpack=false). */
  readonly add: boolean;
  /** ADD --unpack=true of a URL: the fetched file is extracted when it is an archive (BuildKit). */
  readonly unpack?: true;
  /** Paths come from a heredoc or http source: no wildcard expansion. */
  readonly literal?: boolean;
  /**
   * COPY --parents: each path keeps its directories below the source root, or
   * below a `/./` pivot in it; the rest is a pattern (`**` allowed). Absent
   * rather than false, so the keys of other copies do not change.
   */
  readonly parents?: true;
}

export interface MkdirAction {
  readonly op: 'mkdir';
  readonly path: string;
  readonly mode: number;
  readonly chown?: UserSpec;
}

export interface MkfileAction {
  readonly op: 'mkfile';
  readonly path: string;
  readonly data: string;
  readonly mode: number;
  readonly chown?: UserSpec;
}

export type FileAction = CopyAction | MkdirAction | MkfileAction;

/** COPY/ADD/WORKDIR and heredoc files. When `hasRoot`, input 0 is the filesystem written into. */
export interface FileDef {
  readonly kind: 'file';
  readonly hasRoot: boolean;
  readonly actions: readonly FileAction[];
}

/**
 * The layers of its inputs stacked in order, input 0 at the bottom (BuildKit's
 * MergeOp). `COPY --link` copies into an empty filesystem and merges the
 * result onto the stage, so the copy's layer (and its key) does not depend on
 * the layers below: a new base re-stacks it without making it again.
 */
export interface MergeDef {
  readonly kind: 'merge';
}

/** True when input 0 is the filesystem this vertex builds on, so the layers it adds are those past input 0's. */
export function buildsOnInput0(def: VertexDef): boolean {
  return def.kind === 'merge' || ((def.kind === 'exec' || def.kind === 'file') && def.hasRoot);
}

/** A vertex: its definition, and the digests of the vertices it reads. */
export interface Vertex {
  readonly digest: Digest;
  readonly def: VertexDef;
  readonly inputs: readonly Digest[];
}
