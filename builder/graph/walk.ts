import type { Digest } from '../../core/digest.js';
import type { Graph } from './graph.js';

/** Graph questions beyond Graph's own: who reads a vertex, what a vertex needs, what can run apart. */

/** Vertex → the vertices that take it as an input. */
export function dependents(graph: Graph): Map<Digest, Digest[]> {
  const out = new Map<Digest, Digest[]>();
  for (const d of graph.vertices.keys()) out.set(d, []);
  for (const v of graph.vertices.values()) {
    for (const i of v.inputs) {
      const l = out.get(i);
      if (l && !l.includes(v.digest)) l.push(v.digest);
    }
  }
  return out;
}

/** Every vertex `from` needs, itself included. */
export function reachable(graph: Graph, from: Digest): Set<Digest> {
  const seen = new Set<Digest>();
  const stack = [from];
  for (let d = stack.pop(); d !== undefined; d = stack.pop()) {
    if (seen.has(d)) continue;
    seen.add(d);
    stack.push(...graph.get(d).inputs);
  }
  return seen;
}

/**
 * The inputs of a vertex that share no ancestor with each other: each group is
 * a set of vertices that can run without waiting for the others. For a target
 * built from several stages, these are the stages that run in parallel.
 */
export function independentBranches(graph: Graph, root: Digest): Digest[][] {
  const v = graph.get(root);
  // Union inputs whose ancestor sets overlap; shared sources (a base image, the context) do not count,
  // since reading the same source is no reason to wait.
  const isSource = (d: Digest): boolean => graph.get(d).inputs.length === 0;
  const groups: Array<{ heads: Digest[]; members: Set<Digest> }> = [];
  for (const input of v.inputs) {
    const members = reachable(graph, input);
    const overlapping = groups.filter((g) => [...members].some((m) => !isSource(m) && g.members.has(m)));
    const merged = { heads: [input], members };
    for (const g of overlapping) {
      merged.heads.unshift(...g.heads);
      for (const m of g.members) merged.members.add(m);
      groups.splice(groups.indexOf(g), 1);
    }
    groups.push(merged);
  }
  return groups.map((g) => [...g.members].filter((d) => graph.vertices.has(d)).sort());
}
