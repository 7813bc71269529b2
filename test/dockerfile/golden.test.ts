import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { convertDockerfile } from '../../builder/dockerfile/index.js';
import { independentBranches, renderGraph } from '../../builder/graph/index.js';
import { FakeResolver } from './fake-resolver.js';

/** Golden graph dumps: `UPDATE_GOLDEN=1 npx vitest run test/dockerfile/golden.test.ts` rewrites them. */
const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../golden');
const inputs = readdirSync(dir).filter((f) => f.endsWith('.Dockerfile')).sort();
const update = process.env.UPDATE_GOLDEN === '1';

function convert(file: string) {
  return convertDockerfile({
    dockerfile: readFileSync(path.join(dir, file), 'utf8'),
    fileName: file,
    resolver: new FakeResolver(),
    dockerignore: '*.md\n!README.md\n',
  });
}

describe('golden graph dumps', () => {
  it.each(inputs)('%s', async (file) => {
    const json = renderGraph(await convert(file), 'json');
    const golden = path.join(dir, file.replace(/\.Dockerfile$/, '.json'));
    if (update || !existsSync(golden)) writeFileSync(golden, json);
    expect(json).toBe(readFileSync(golden, 'utf8'));
  });

  it('json rendering is stable across conversions', async () => {
    const a = renderGraph(await convert('multistage.Dockerfile'), 'json');
    const b = renderGraph(await convert('multistage.Dockerfile'), 'json');
    expect(a).toBe(b);
  });

  it('the 3-stage file keeps the 2 stages the target needs, as independent branches', async () => {
    const def = await convert('multistage.Dockerfile');
    const doc = JSON.parse(renderGraph(def, 'json')) as { vertices: Array<{ meta?: { stage?: string } }> };
    const stages = new Set(doc.vertices.flatMap((v) => (v.meta?.stage ? [v.meta.stage] : [])));
    expect(stages).toEqual(new Set(['lib', 'app']));
    // The final COPY reads two branches: the app's own base, and the whole lib chain.
    const branches = independentBranches(def.graph, def.root as never);
    expect(branches).toHaveLength(2);
    const kinds = branches.map((b) => b.map((d) => def.graph.get(d).def.kind).sort().join(','));
    expect(kinds.sort()).toEqual(['exec,file,file,image,local', 'image']);
  });

  it('dot and mermaid show stage clusters and edges', async () => {
    const def = await convert('multistage.Dockerfile');
    const dot = renderGraph(def, 'dot');
    expect(dot).toMatch(/subgraph cluster_\d+ \{\n\s+label="lib";/);
    expect(dot).toMatch(/subgraph cluster_\d+ \{\n\s+label="app";/);
    expect(dot).not.toContain('docs');
    const edges = def.graph.topoOrder().reduce((n, v) => n + v.inputs.length, 0);
    expect(dot.match(/->/g)?.length).toBe(edges);
    const mm = renderGraph(def, 'mermaid');
    expect(mm.startsWith('graph BT\n')).toBe(true);
    expect(mm).toMatch(/subgraph s\d\["lib"\]/);
    expect(mm).toMatch(/subgraph s\d\["app"\]/);
    expect(mm.match(/-->/g)?.length).toBe(edges);
  });
});
