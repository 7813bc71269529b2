import type { Digest } from '../../core/digest.js';
import { DEFAULT_PATH, platformString, type Platform } from '../../core/oci.js';
import { familiarReference, parseReference } from '../../core/reference.js';
import type { NamedSource } from '../graph/index.js';
import { addGitSource, gitSourceDef } from './git-source.js';
import { cloneConfig, type ConvertContext, type NamedInput, type StageState } from './state.js';

/**
 * Named contexts (`--build-context NAME=…`) in the frontend, BuildKit's rules:
 * `FROM NAME`, `COPY --from=NAME` and `RUN --mount=from=NAME` take the context
 * before a stage or an image of that name, and a stage named NAME is replaced
 * by it (its instructions are not converted).
 */

/** What a named context is in the graph. */
/**
 * The name a context is found under: image references in Docker's short form
 * without `:latest` (so `FROM alpine`, `FROM docker.io/library/alpine:latest`
 * and a context named `alpine` meet, as in BuildKit), other names lower-cased
 * like stage names.
 */
export function namedContextKey(name: string): string {
  try {
    return familiarReference(parseReference(name)).replace(/:latest$/, '');
  } catch {
    return name.toLowerCase();
  }
}

/** Adds the context's vertex (shared by every use); `label` names it in progress output. */
export async function namedInput(ctx: ConvertContext, src: NamedSource, label: string, platform: Platform): Promise<NamedInput> {
  switch (src.kind) {
    case 'local':
      return { input: ctx.graph.add({ kind: 'local', name: src.name, excludes: src.excludes }, [], { name: `[context ${label}] load` }), layered: false };
    case 'image': {
      const image = await ctx.resolveImage(src.ref, platform);
      const input = ctx.graph.add({ kind: 'image', ref: image.ref, platform: image.platform }, [], { name: `[context ${label}] ${src.ref}` });
      return { input, image, layered: true };
    }
    case 'git':
      return { input: addGitSource(ctx, gitSourceDef(src.url), { name: `[context ${label}] ${src.url}` }), layered: true };
  }
}

/** A stage that starts from a named context (FROM NAME, or the stage NAME replaced). */
export function stageFromNamed(ctx: ConvertContext, n: NamedInput, st: Pick<StageState, 'label' | 'index' | 'steps' | 'platform'>): StageState {
  const root = n.layered
    ? n.input
    : ctx.graph.add({ kind: 'file', hasRoot: false, actions: [{ op: 'copy', src: 0, paths: ['/'], dest: '/', excludes: [], add: false, literal: true }] }, [n.input], {
        name: `[${st.label} 1/${st.steps}] FROM context`,
        stage: st.label,
        platform: platformString(st.platform),
      });
  return {
    label: st.label,
    index: st.index,
    root,
    config: n.image ? cloneConfig(n.image.config) : { Env: [`PATH=${DEFAULT_PATH}`] },
    history: (n.image?.history ?? []).map((h) => ({ ...h, inherited: true })),
    args: new Map(),
    cmdSet: false,
    platform: n.image?.platform ?? st.platform,
    step: 1,
    steps: st.steps,
  };
}
