/**
 * A multi-platform build as one graph: each platform's Dockerfile conversion
 * is added to a single graph, where identical vertices (a `--platform=
 * $BUILDPLATFORM` stage, a COPY of context files into an empty filesystem)
 * are one vertex by construction (a vertex is named by its definition and
 * inputs), so the solver runs them once for every platform. Each platform
 * keeps its own root, config and history.
 */
import type { Digest } from '../core/digest.js';
import type { Platform } from '../core/oci.js';
import { Graph, type BuildDefinition, type Warning } from './graph/index.js';

export interface PlatformDefinition {
  readonly platform: Platform;
  readonly def: BuildDefinition;
}

export interface PlatformPlan {
  readonly graph: Graph;
  /** The roots to solve (a scratch image with no step has none). */
  readonly roots: readonly Digest[];
  /** Each warning once, though every platform's conversion reports it. */
  readonly warnings: readonly Warning[];
  readonly platforms: readonly PlatformDefinition[];
}

/**
 * One platform: its definition as it is. Several: one graph, each vertex
 * named with its stage's platform in front (`[linux/arm64 stage-0 3/7] RUN
 * make`), as one progress view shows them.
 */
export function planPlatforms(platforms: readonly PlatformDefinition[]): PlatformPlan {
  const roots = [...new Set(platforms.flatMap(({ def }) => (def.root ? [def.root] : [])))];
  const warnings = uniqueWarnings(platforms.flatMap(({ def }) => def.warnings));
  if (platforms.length === 1) return { graph: platforms[0]!.def.graph, roots, warnings, platforms };
  const graph = new Graph();
  for (const { def } of platforms) {
    for (const v of def.graph.topoOrder()) {
      const meta = def.graph.meta.get(v.digest);
      graph.add(v.def, v.inputs, meta ? { ...meta, name: withPlatform(meta.name, meta.platform) } : undefined);
    }
  }
  return { graph, roots, warnings, platforms };
}

function withPlatform(name: string, platform: string | undefined): string {
  return platform && name.startsWith('[') ? `[${platform} ${name.slice(1)}` : name;
}

function uniqueWarnings(all: readonly Warning[]): Warning[] {
  const seen = new Set<string>();
  return all.filter((w) => {
    const k = JSON.stringify([w.message, w.range, w.rule]);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

