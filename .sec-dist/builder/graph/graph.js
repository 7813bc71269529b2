import { digestJson } from '../../core/digest.js';
const VERTEX_TAG = 'buildlite.vertex.v1';
export function vertexDigest(def, inputs) {
    return digestJson(VERTEX_TAG, { def, inputs });
}
/**
 * Vertices by digest plus side maps. Adding the same definition twice yields
 * the same vertex, which is how two stages share work.
 */
export class Graph {
    vertices = new Map();
    meta = new Map();
    add(def, inputs, meta) {
        for (const i of inputs) {
            if (!this.vertices.has(i))
                throw new Error(`graph: input ${i} is not in the graph`);
        }
        const digest = vertexDigest(def, inputs);
        if (!this.vertices.has(digest))
            this.vertices.set(digest, { digest, def, inputs: [...inputs] });
        if (meta && !this.meta.has(digest))
            this.meta.set(digest, meta);
        return digest;
    }
    get(digest) {
        const v = this.vertices.get(digest);
        if (!v)
            throw new Error(`graph: no vertex ${digest}`);
        return v;
    }
    /** Only the vertices reachable from `roots`, in a new graph (the --target pruning). */
    subgraph(roots) {
        const out = new Graph();
        const seen = new Set();
        const visit = (d) => {
            if (seen.has(d))
                return;
            seen.add(d);
            const v = this.get(d);
            v.inputs.forEach(visit);
            out.vertices.set(d, v);
            const m = this.meta.get(d);
            if (m)
                out.meta.set(d, m);
        };
        roots.forEach(visit);
        return out;
    }
    /** Inputs before dependents; ties in insertion order, so dumps are stable. */
    topoOrder() {
        const order = [];
        const seen = new Set();
        const visit = (d) => {
            if (seen.has(d))
                return;
            seen.add(d);
            const v = this.get(d);
            v.inputs.forEach(visit);
            order.push(v);
        };
        for (const d of this.vertices.keys())
            visit(d);
        return order;
    }
    /** Canonical plain-data form for golden files and the wire. */
    toJSON() {
        return {
            vertices: this.topoOrder().map((v) => {
                const meta = this.meta.get(v.digest);
                return meta ? { ...v, meta } : { ...v };
            }),
        };
    }
}
//# sourceMappingURL=graph.js.map