import { digestJson, type Digest } from '../../core/digest.js';
import type { SourceRange } from '../../core/errors.js';
import type { Vertex, VertexDef } from './vertex.js';

/** What people see of a vertex; never part of its digest. */
export interface VertexMeta {
  /** Progress label, e.g. `[build 2/4] RUN make`. */
  readonly name: string;
  /**
   * The stage that added the vertex (the first, for a vertex two stages
   * share); absent outside stages (the build context). The one stage map:
   * --no-cache-filter, vertex events and `buildlite graph` read it here.
   */
  readonly stage?: string;
  readonly range?: SourceRange;
  /** The platform of the vertex's stage (`linux/arm64`), which a multi-platform build shows in front of the name. */
  readonly platform?: string;
}

const VERTEX_TAG = 'buildlite.vertex.v1';

export function vertexDigest(def: VertexDef, inputs: readonly Digest[]): Digest {
  return digestJson(VERTEX_TAG, { def, inputs });
}

/**
 * Vertices by digest plus side maps. Adding the same definition twice yields
 * the same vertex, which is how two stages share work.
 */
export class Graph {
  readonly vertices = new Map<Digest, Vertex>();
  readonly meta = new Map<Digest, VertexMeta>();

  add(def: VertexDef, inputs: readonly Digest[], meta?: VertexMeta): Digest {
    for (const i of inputs) {
      if (!this.vertices.has(i)) throw new Error(`graph: input ${i} is not in the graph`);
    }
    const digest = vertexDigest(def, inputs);
    if (!this.vertices.has(digest)) this.vertices.set(digest, { digest, def, inputs: [...inputs] });
    if (meta && !this.meta.has(digest)) this.meta.set(digest, meta);
    return digest;
  }

  /** The stage of a vertex (VertexMeta.stage). */
  stageOf(digest: Digest): string | undefined {
    return this.meta.get(digest)?.stage;
  }

  get(digest: Digest): Vertex {
    const v = this.vertices.get(digest);
    if (!v) throw new Error(`graph: no vertex ${digest}`);
    return v;
  }

  /** Only the vertices reachable from `roots`, in a new graph (the --target pruning). */
  subgraph(roots: readonly Digest[]): Graph {
    const out = new Graph();
    const seen = new Set<Digest>();
    const visit = (d: Digest): void => {
      if (seen.has(d)) return;
      seen.add(d);
      const v = this.get(d);
      v.inputs.forEach(visit);
      out.vertices.set(d, v);
      const m = this.meta.get(d);
      if (m) out.meta.set(d, m);
    };
    roots.forEach(visit);
    return out;
  }

  /** Inputs before dependents; ties in insertion order, so dumps are stable. */
  topoOrder(): Vertex[] {
    const order: Vertex[] = [];
    const seen = new Set<Digest>();
    const visit = (d: Digest): void => {
      if (seen.has(d)) return;
      seen.add(d);
      const v = this.get(d);
      v.inputs.forEach(visit);
      order.push(v);
    };
    for (const d of this.vertices.keys()) visit(d);
    return order;
  }

  /** Canonical plain-data form for golden files and the wire. */
  toJSON(): { vertices: Array<Vertex & { meta?: VertexMeta }> } {
    return {
      vertices: this.topoOrder().map((v) => {
        const meta = this.meta.get(v.digest);
        return meta ? { ...v, meta } : { ...v };
      }),
    };
  }
}
