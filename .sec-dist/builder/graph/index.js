export { Graph, vertexDigest } from './graph.js';
export { renderGraph } from './render.js';
export { dependents, independentBranches, reachable } from './walk.js';
//# sourceMappingURL=index.js.map