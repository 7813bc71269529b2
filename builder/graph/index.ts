export { Graph, vertexDigest, type VertexMeta } from './graph.js';
export type {
  VertexDef,
  ImageSourceDef,
  LocalSourceDef,
  HttpSourceDef,
  GitSourceDef,
  UserSpec,
  ExecMount,
  ExecDef,
  CopyAction,
  MkdirAction,
  MkfileAction,
  FileAction,
  FileDef,
  MergeDef,
  Vertex,
} from './vertex.js';
export { buildsOnInput0, execPlatform } from './vertex.js';
export type { HistoryStep, Warning, BuildDefinition, ResolvedImage, ImageResolver, NamedSource } from './definition.js';
export { renderGraph, type GraphFormat } from './render.js';
export { dependents, independentBranches, reachable } from './walk.js';
