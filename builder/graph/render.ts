import { canonicalJson, type Digest } from '../../core/digest.js';
import { redactUrlCredentials } from '../../core/redact.js';
import type { BuildDefinition } from './definition.js';
import type { Vertex, VertexDef } from './vertex.js';

/** Human views of a build definition: canonical JSON (golden files, `buildlite graph`), Graphviz dot, Mermaid. */
export type GraphFormat = 'json' | 'dot' | 'mermaid';

export function renderGraph(def: BuildDefinition, format: GraphFormat): string {
  // Printed views: an ADD URL's password stays out of them (the definition itself keeps the URL).
  return redactUrlCredentials(render(def, format));
}

function render(def: BuildDefinition, format: GraphFormat): string {
  switch (format) {
    case 'json':
      return renderJson(def);
    case 'dot':
      return renderDot(def);
    case 'mermaid':
      return renderMermaid(def);
  }
}

/** Stable across runs: vertices in topological order, keys sorted, maps as sorted objects. */
function renderJson(def: BuildDefinition): string {
  // Each vertex's stage again, as one map: the format predates VertexMeta.stage being the one stage map.
  const stageOf = Object.fromEntries(
    [...def.graph.vertices.keys()].flatMap((d) => (def.graph.stageOf(d) !== undefined ? [[d, def.graph.stageOf(d)!] as const] : [])).sort(([a], [b]) => (a < b ? -1 : 1)),
  );
  const doc = {
    root: def.root,
    platform: def.platform,
    ...def.graph.toJSON(),
    stageOf,
    config: def.config,
    history: def.history,
    warnings: def.warnings,
    ...(def.author !== undefined ? { author: def.author } : {}),
  };
  // Canonical key order, pretty-printed for diffs.
  return `${JSON.stringify(JSON.parse(canonicalJson(doc)), null, 2)}\n`;
}

function short(d: Digest): string {
  return d.slice('sha256:'.length, 'sha256:'.length + 12);
}

function summary(def: VertexDef): string {
  switch (def.kind) {
    case 'image':
      return `image ${def.ref}`;
    case 'local':
      return `local ${def.name}`;
    case 'http':
      return `http ${def.url}`;
    case 'git':
      return `git ${def.remote}${def.ref !== undefined ? `#${def.ref}` : ''}${def.subdir !== undefined ? `:${def.subdir}` : ''}`;
    case 'exec':
      return `exec ${def.args.join(' ')}`;
    case 'file':
      return `file ${def.actions.map((a) => a.op).join(',') || 'empty'}`;
    case 'merge':
      return 'merge';
  }
}

function label(def: BuildDefinition, v: Vertex): string {
  const text = def.graph.meta.get(v.digest)?.name ?? summary(v.def);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function byStage(def: BuildDefinition): { stages: Map<string, Vertex[]>; loose: Vertex[] } {
  const stages = new Map<string, Vertex[]>();
  const loose: Vertex[] = [];
  for (const v of def.graph.topoOrder()) {
    const s = def.graph.stageOf(v.digest);
    if (s === undefined) {
      loose.push(v);
      continue;
    }
    const l = stages.get(s) ?? [];
    l.push(v);
    stages.set(s, l);
  }
  return { stages, loose };
}

function renderDot(def: BuildDefinition): string {
  const q = (s: string): string => JSON.stringify(s);
  const lines = ['digraph build {', '  rankdir=BT;', '  node [shape=box, fontname="monospace"];'];
  const { stages, loose } = byStage(def);
  let n = 0;
  for (const [stage, vs] of stages) {
    lines.push(`  subgraph cluster_${n++} {`, `    label=${q(stage)};`);
    for (const v of vs) lines.push(`    ${q(short(v.digest))} [label=${q(label(def, v))}];`);
    lines.push('  }');
  }
  for (const v of loose) lines.push(`  ${q(short(v.digest))} [label=${q(label(def, v))}];`);
  for (const v of def.graph.topoOrder()) {
    for (const i of v.inputs) lines.push(`  ${q(short(i))} -> ${q(short(v.digest))};`);
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

function renderMermaid(def: BuildDefinition): string {
  const esc = (s: string): string => s.replace(/"/g, '#quot;');
  const id = (d: Digest): string => `v${short(d)}`;
  const lines = ['graph BT'];
  const { stages, loose } = byStage(def);
  let n = 0;
  for (const [stage, vs] of stages) {
    lines.push(`  subgraph s${n++}["${esc(stage)}"]`);
    for (const v of vs) lines.push(`    ${id(v.digest)}["${esc(label(def, v))}"]`);
    lines.push('  end');
  }
  for (const v of loose) lines.push(`  ${id(v.digest)}["${esc(label(def, v))}"]`);
  for (const v of def.graph.topoOrder()) {
    for (const i of v.inputs) lines.push(`  ${id(i)} --> ${id(v.digest)}`);
  }
  return `${lines.join('\n')}\n`;
}
