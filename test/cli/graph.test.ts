import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

interface GraphJson {
  vertices: Array<{ digest: string; def: { kind: string; args?: string[] }; inputs: string[]; meta?: { stage?: string } }>;
}

describe('buildlite graph', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'bl-graph-'));
    await writeFile(
      path.join(dir, 'Dockerfile'),
      [
        'FROM scratch AS tools',
        'COPY tool.txt /tool',
        'FROM scratch AS docs',
        'COPY docs.txt /docs',
        'FROM scratch AS unused',
        'COPY unused.txt /unused',
        'FROM scratch AS final',
        'COPY --from=tools /tool /tool',
        'COPY --from=docs /docs /docs',
        'FROM scratch AS other',
        'COPY --from=unused /unused /u',
        '',
      ].join('\n'),
    );
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('--format json keeps only the stages the target needs, each its own branch', async () => {
    const res = await runCli(['graph', '--format', 'json', '--target', 'final', dir]);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const g = JSON.parse(res.stdout) as GraphJson;
    const stages = new Set(g.vertices.map((v) => v.meta?.stage).filter((s) => s !== undefined));
    expect([...stages].sort()).toEqual(['docs', 'final', 'tools']);
    // tools and docs do not depend on each other: neither reaches the other's vertices.
    const byDigest = new Map(g.vertices.map((v) => [v.digest, v]));
    const reach = (d: string, seen = new Set<string>()): Set<string> => {
      for (const i of byDigest.get(d)?.inputs ?? []) if (!seen.has(i)) reach(i, seen.add(i));
      return seen;
    };
    const toolsV = g.vertices.filter((v) => v.meta?.stage === 'tools').map((v) => v.digest);
    const docsV = g.vertices.filter((v) => v.meta?.stage === 'docs').map((v) => v.digest);
    for (const t of toolsV) for (const d of docsV) expect(reach(t).has(d)).toBe(false);
    for (const d of docsV) for (const t of toolsV) expect(reach(d).has(t)).toBe(false);
  });

  it('--format dot and mermaid render edges; a bad format is a usage error', async () => {
    const dot = await runCli(['graph', '--format', 'dot', dir]);
    expect(dot.code).toBe(0);
    expect(dot.stdout).toMatch(/^digraph/m);
    expect(dot.stdout).toContain('->');
    const mermaid = await runCli(['graph', '--format', 'mermaid', dir]);
    expect(mermaid.code).toBe(0);
    expect(mermaid.stdout).toMatch(/^(flowchart|graph)/m);
    const bad = await runCli(['graph', '--format', 'svg', dir]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--format');
  });

  it('a Dockerfile error names the line and exits 1', async () => {
    const bad = await mkdtemp(path.join(os.tmpdir(), 'bl-graph-bad-'));
    try {
      await writeFile(path.join(bad, 'Dockerfile'), 'FROM scratch\nCOPPY a /b\n');
      const res = await runCli(['graph', bad]);
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(/Dockerfile:2/);
      expect(res.stderr).toMatch(/COPY/); // the "did you mean"
    } finally {
      await rm(bad, { recursive: true, force: true });
    }
  });
});
