import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildRequest } from '../../core/build.js';
import type { Builder } from '../../builder/index.js';
import { drive, writeTree } from '../helpers/build-driver.js';
import { startBuilderEnv, type BuilderEnv } from '../helpers/builder-env.js';

/**
 * DESIGN invariant 3, as a table: each edit reruns exactly the steps listed
 * (from the build's own `started` events), and nothing else.
 *
 * Two BuildKit rules the expectations encode:
 * - a declared ARG is in the environment of every later RUN of its stage, so
 *   changing its value reruns those RUNs even when no command mentions it; a
 *   --build-arg nobody declares changes nothing;
 * - ENV changes the environment of later RUNs but not what a COPY writes.
 */
const STAGES = {
  deps: `FROM \${BASE} AS deps
ARG DEPVER=1
RUN echo deps-$DEPVER > /deps.txt
`,
  tools: `FROM \${BASE} AS tools
ARG FLAVOR
RUN echo tools > /tools.txt
`,
};

function dockerfile(o: { order?: 'deps-first' | 'tools-first'; env?: string; chown?: string; catTo?: string } = {}): string {
  const stages = o.order === 'tools-first' ? STAGES.tools + STAGES.deps : STAGES.deps + STAGES.tools;
  return `ARG BASE
${stages}
FROM \${BASE} AS final
ENV APP=${o.env ?? '1'}
COPY --chown=${o.chown ?? '0:0'} app/ /app/
RUN cat /app/main.txt > ${o.catTo ?? '/out.txt'}
COPY --from=deps /deps.txt /deps.txt
COPY --from=tools /tools.txt /tools.txt
RUN echo done
`;
}

const ALL_STEPS = [
  'FROM',
  'RUN echo deps-$DEPVER > /deps.txt',
  'RUN echo tools > /tools.txt',
  'COPY app',
  'RUN cat',
  'COPY --from=deps',
  'COPY --from=tools',
  'RUN echo done',
];
const FINAL_FROM_APP = ['COPY app', 'RUN cat', 'COPY --from=deps', 'COPY --from=tools', 'RUN echo done'];
const FINAL_FROM_CAT = ['RUN cat', 'COPY --from=deps', 'COPY --from=tools', 'RUN echo done'];

/** `[final 3/6] COPY --chown=0:0 app/ /app/` → `COPY app`; one short label per step. */
function label(name: string): string {
  const s = name.replace(/^\[[^\]]*\]\s*/, '');
  if (/^FROM\b/i.test(s) || /^(docker-image|image)/.test(s)) return 'FROM';
  if (/^COPY --chown/.test(s)) return 'COPY app';
  if (/^COPY --from=deps/.test(s)) return 'COPY --from=deps';
  if (/^COPY --from=tools/.test(s)) return 'COPY --from=tools';
  if (/^RUN cat/.test(s)) return 'RUN cat';
  return s;
}

describe('exact invalidation: which steps rerun after each edit', () => {
  let env: BuilderEnv;
  let tmp: string;
  let ctx: string;
  let builder: Builder;
  let base: string;

  beforeAll(async () => {
    env = await startBuilderEnv('inval');
    ({ tmp, builder, base } = env);
    ctx = path.join(tmp, 'ctx');
    await writeTree(ctx, {
      'app/main.txt': 'hello\n',
      'app/lib.txt': 'lib\n',
      'app/debug.log': 'ignored\n',
      'notes.txt': 'not copied\n',
      '.dockerignore': '**/*.log\n',
    });
  });

  afterAll(async () => {
    await env?.stop();
  });

  const request = (o: Parameters<typeof dockerfile>[0] = {}, extra: Partial<BuildRequest> = {}, args: Record<string, string> = {}): BuildRequest => ({
    dockerfile: dockerfile(o),
    context: { dir: ctx },
    buildArgs: { BASE: base, ...args },
    ...extra,
  });

  async function rerunOf(req: BuildRequest): Promise<string[]> {
    const out = await drive(builder, req);
    expect(out.error).toBeUndefined();
    return [...new Set(out.ran.map(label))].sort();
  }

  const sorted = (xs: string[]) => [...xs].sort();
  const blobFile = (digest: string) => path.join(tmp, 'root', 'content', 'blobs', 'sha256', digest.slice('sha256:'.length));

  // Rows run in order; each starts from the state the previous one left.
  const rows: Array<{ edit: string; act?: () => Promise<void>; req: () => BuildRequest; expect: string[] }> = [
    { edit: 'first build', req: () => request(), expect: ALL_STEPS },
    { edit: 'nothing changed', req: () => request(), expect: [] },
    { edit: 'file content', act: () => writeFile(path.join(ctx, 'app/main.txt'), 'hello again\n'), req: () => request(), expect: FINAL_FROM_APP },
    { edit: 'file mode', act: () => chmod(path.join(ctx, 'app/lib.txt'), 0o755), req: () => request(), expect: FINAL_FROM_APP },
    { edit: 'unrelated file', act: () => writeFile(path.join(ctx, 'notes.txt'), 'edited\n'), req: () => request(), expect: [] },
    { edit: 'ignored file', act: () => writeFile(path.join(ctx, 'app/debug.log'), 'edited\n'), req: () => request(), expect: [] },
    { edit: 'build arg used', req: () => request({}, {}, { DEPVER: '2' }), expect: ['RUN echo deps-$DEPVER > /deps.txt', 'COPY --from=deps', 'COPY --from=tools', 'RUN echo done'] },
    { edit: 'build arg nobody declares', req: () => request({}, {}, { DEPVER: '2', UNDECLARED: 'x' }), expect: [] },
    {
      edit: 'build arg declared, not mentioned by the RUN',
      req: () => request({}, {}, { DEPVER: '2', FLAVOR: 'b' }),
      expect: ['RUN echo tools > /tools.txt', 'COPY --from=tools', 'RUN echo done'],
    },
    { edit: 'ENV', req: () => request({ env: '2' }, {}, { DEPVER: '2', FLAVOR: 'b' }), expect: FINAL_FROM_CAT },
    { edit: 'instruction text', req: () => request({ env: '2', catTo: '/out2.txt' }, {}, { DEPVER: '2', FLAVOR: 'b' }), expect: FINAL_FROM_CAT },
    { edit: 'COPY --chown', req: () => request({ env: '2', catTo: '/out2.txt', chown: '1000:1000' }, {}, { DEPVER: '2', FLAVOR: 'b' }), expect: FINAL_FROM_APP },
    {
      edit: 'stage reorder, same content',
      req: () => request({ env: '2', catTo: '/out2.txt', chown: '1000:1000', order: 'tools-first' }, {}, { DEPVER: '2', FLAVOR: 'b' }),
      expect: [],
    },
    {
      // GC or a crash took a blob a record names: that step and every step whose chain holds
      // it rerun; the records below it still stand.
      edit: "a cached step's layer blob is gone from the store",
      act: async () => {
        const out = await drive(builder, request({ env: '2', catTo: '/out2.txt', chown: '1000:1000' }, {}, { DEPVER: '2', FLAVOR: 'b' }));
        expect(out.ran).toEqual([]);
        const manifest = JSON.parse(await readFile(blobFile(out.result!.imageDigest), 'utf8')) as { layers: Array<{ digest: string }> };
        // From the top: COPY --from=tools, COPY --from=deps, RUN cat (RUN echo done writes nothing, so adds no layer).
        await rm(blobFile(manifest.layers.at(-3)!.digest));
      },
      req: () => request({ env: '2', catTo: '/out2.txt', chown: '1000:1000' }, {}, { DEPVER: '2', FLAVOR: 'b' }),
      expect: FINAL_FROM_CAT,
    },
    {
      edit: '--no-cache-filter tools',
      req: () => request({ env: '2', catTo: '/out2.txt', chown: '1000:1000' }, { noCacheFilter: ['tools'] }, { DEPVER: '2', FLAVOR: 'b' }),
      expect: ['RUN echo tools > /tools.txt', 'COPY --from=tools', 'RUN echo done'],
    },
    {
      edit: 'base image re-tagged to a new digest',
      act: async () => {
        // Build a different image and push it under the base's tag.
        const res = await drive(builder, { dockerfile: `FROM ${base}\nRUN echo v2 > /base-v2\n`, context: { dir: ctx }, outputs: [{ type: 'registry', refs: [base] }] });
        expect(res.error).toBeUndefined();
      },
      req: () => request({ env: '2', catTo: '/out2.txt', chown: '1000:1000' }, {}, { DEPVER: '2', FLAVOR: 'b' }),
      expect: ALL_STEPS,
    },
    { edit: '--no-cache', req: () => request({ env: '2', catTo: '/out2.txt', chown: '1000:1000' }, { noCache: true }, { DEPVER: '2', FLAVOR: 'b' }), expect: ALL_STEPS },
  ];

  it.each(rows.map((r, i) => [i, r.edit] as const))('row %i: %s', async (i) => {
    const row = rows[i]!;
    await row.act?.();
    expect(await rerunOf(row.req())).toEqual(sorted(row.expect));
  });
});
