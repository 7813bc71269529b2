import type { Digest } from '../../core/digest.js';
import { withLocation } from '../../core/errors.js';
import { parseIgnoreFile } from '../../core/ignore.js';
import { DEFAULT_PATH, platformString, type Platform } from '../../core/oci.js';
import { hostPlatform } from '../../core/platform.js';
import { Graph, type BuildDefinition, type ImageResolver, type NamedSource, type ResolvedImage } from '../graph/index.js';
import { dispatchCopy } from './convert-copy.js';
import {
  dispatchArg,
  dispatchCmd,
  dispatchEnvLabel,
  dispatchExpose,
  dispatchHealthcheck,
  dispatchOnbuild,
  dispatchShell,
  dispatchString,
  dispatchVolume,
  type ArgSources,
} from './convert-meta.js';
import { dispatchRun } from './convert-run.js';
import { namedContextKey, namedInput, stageFromNamed } from './named-contexts.js';
import { DockerfileError } from './errors.js';
import type { Instruction } from './instructions.js';
import { processWord, type Lookup } from './lexer.js';
import { checkDefaultFromArgs, checkFromArgs, checkFromPlatforms, checkWholeFile } from './check-static.js';
import { Checks } from './checks.js';
import { asDockerfileError, parseDockerfile, type ParsedDockerfile } from './parse.js';
import { parseInstruction } from './parse-instruction.js';
import { baseStage, findStage, splitStages, stageDeps, stageLabel, targetStage, type Stage, type StagePlan } from './stages.js';
import { cloneConfig, type ConvertContext, type NamedInput, type StageState } from './state.js';
import { parsePlatform } from './values.js';

export interface ConvertOptions {
  readonly dockerfile: string;
  /** Used in error ranges; default `Dockerfile`. */
  readonly fileName?: string;
  readonly buildArgs?: Readonly<Record<string, string>>;
  readonly target?: string;
  readonly platform?: Platform;
  readonly resolver: ImageResolver;
  /** Text of the .dockerignore that applies (the Dockerfile-specific one wins; the caller picks). */
  readonly dockerignore?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal;
  /** Network of a RUN without --network (`buildlite build --network`); default `default` (= none). */
  readonly defaultNetwork?: 'default' | 'none' | 'host';
  /** Convert every stage, not only those the target needs, so every instruction is checked (`build --check`). */
  readonly allStages?: boolean;
  /** `--build-context`, by name as given: resolved before stages and images of that name. */
  readonly namedContexts?: ReadonlyMap<string, NamedSource>;
  /** `parseDockerfile(dockerfile, fileName)`, when the caller has it already (builder/parse-cache.ts). */
  readonly parsed?: ParsedDockerfile;
}

function predefinedArgs(target: Platform, build: Platform): Map<string, string> {
  return new Map([
    ['TARGETPLATFORM', platformString(target)],
    ['TARGETOS', target.os],
    ['TARGETARCH', target.architecture],
    ['TARGETVARIANT', target.variant ?? ''],
    ['BUILDPLATFORM', platformString(build)],
    ['BUILDOS', build.os],
    ['BUILDARCH', build.architecture],
    ['BUILDVARIANT', build.variant ?? ''],
  ]);
}

/** Dockerfile text → the build graph the target needs, and the target image's config and history. */
export async function convertDockerfile(opts: ConvertOptions): Promise<BuildDefinition> {
  const fileName = opts.fileName ?? 'Dockerfile';
  const parsed = opts.parsed ?? parseDockerfile(opts.dockerfile, fileName);
  const plan = splitStages(parsed.instructions);
  const targetPlatform = opts.platform ?? hostPlatform();
  const predefined = predefinedArgs(targetPlatform, hostPlatform());
  const buildArgs = new Map(Object.entries(opts.buildArgs ?? {}));
  const consumedArgs = new Set<string>();

  const globals = resolveGlobals(plan, buildArgs, predefined, parsed.escape, consumedArgs);
  const globalLookup: Lookup = (n) => (globals.has(n) ? globals.get(n) : predefined.get(n));
  const warnings = [...parsed.warnings];
  const checks = new Checks(Checks.configOf(parsed.checkText, buildArgs), parsed.checkText, warnings);
  checkWholeFile(plan, parsed.checkText, checks);
  checkFromArgs(plan, (n) => globals.has(n) || predefined.has(n), globalLookup, parsed.escape, checks, [...globals.keys(), ...predefined.keys()]);
  checkFromPlatforms(plan, globalLookup, parsed.escape, checks);
  const defaults = resolveGlobals(plan, new Map(), predefined, parsed.escape, new Set());
  checkDefaultFromArgs(plan, (n) => (defaults.has(n) ? defaults.get(n) : predefined.get(n)), parsed.escape, (n) => findStage(plan.stages, n, false) !== undefined, checks);
  const deps = stageDeps(plan, globalLookup, parsed.escape);
  const target = targetStage(plan, opts.target);

  const graph = new Graph();
  const dockerignore = parseIgnoreFile(opts.dockerignore ?? '');
  const images = new Map<string, Promise<ResolvedImage>>();
  const done = new Map<number, Promise<StageState>>();
  let contextDigest: Digest | undefined;
  let emptyDigest: Digest | undefined;
  const argSources: ArgSources = { buildArgs, globals, predefined };
  const named = new Map([...(opts.namedContexts ?? [])].map(([name, src]) => [namedContextKey(name), { name, src }]));
  const namedInputs = new Map<string, Promise<NamedInput>>();

  const ctx: ConvertContext = {
    graph,
    fileName,
    escape: parsed.escape,
    buildArgs,
    warnings,
    resolver: opts.resolver,
    consumedArgs,
    checks,
    ...(opts.defaultNetwork ? { defaultNetwork: opts.defaultNetwork } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    dockerignore,
    context() {
      contextDigest ??= graph.add({ kind: 'local', name: 'context', excludes: dockerignore }, [], {
        name: '[internal] load build context',
      });
      return contextDigest;
    },
    emptyRoot() {
      emptyDigest ??= graph.add({ kind: 'file', hasRoot: false, actions: [] }, [], { name: '[internal] empty filesystem' });
      return emptyDigest;
    },
    resolveImage(ref, platform) {
      const key = `${ref}\0${platformString(platform)}`;
      let p = images.get(key);
      if (!p) {
        opts.signal?.throwIfAborted();
        p = opts.resolver.resolve(ref, platform, opts.signal);
        images.set(key, p);
      }
      return p;
    },
    namedContext(name, platform) {
      const key = namedContextKey(name);
      const hit = named.get(key);
      if (!hit) return undefined;
      let p = namedInputs.get(key);
      if (!p) namedInputs.set(key, (p = namedInput(ctx, hit.src, hit.name, platform)));
      return p;
    },
    async stageRoot(ref, from) {
      const s = findStage(plan.stages, ref, true);
      if (!s) {
        const n = await ctx.namedContext(ref, from.platform);
        return n ? { root: n.input } : undefined;
      }
      if (s.index === from.index) throw new DockerfileError(`stage ${JSON.stringify(from.label)} refers to itself`);
      const st = await runStage(s);
      return { root: st.root };
    },
  };

  const inProgress = new Set<number>();
  const runStage = (s: Stage): Promise<StageState> => {
    let p = done.get(s.index);
    if (!p) {
      if (inProgress.has(s.index)) {
        return Promise.reject(new DockerfileError(`circular dependency on stage ${JSON.stringify(stageLabel(s))}`, { range: s.from.range }));
      }
      inProgress.add(s.index);
      p = convertStage(ctx, plan, s, argSources, globalLookup, targetPlatform, runStage);
      done.set(s.index, p);
    }
    return p;
  };

  // Resolve the base images of every stage the target needs at once, so registry round trips overlap.
  prefetchBases(plan, target, deps, globalLookup, parsed.escape, targetPlatform, ctx);
  const final = await runStage(target);
  if (opts.allStages) for (const s of plan.stages) await runStage(s);

  for (const k of buildArgs.keys()) {
    if (!consumedArgs.has(k) && !predefined.has(k) && !isProxy(k) && !isBuildkitArg(k)) {
      warnings.push({ message: `build-arg ${JSON.stringify(k)} was not consumed: no ARG declares it` });
    }
  }
  const kept = graph.subgraph(final.root ? [final.root] : []);
  const config = cloneConfig(final.config);
  if (opts.labels && Object.keys(opts.labels).length > 0) config.Labels = { ...(config.Labels ?? {}), ...opts.labels };
  const def: BuildDefinition = {
    graph: kept,
    root: final.root,
    platform: final.platform,
    config,
    history: final.history,
    warnings,
    ...(final.author !== undefined ? { author: final.author } : {}),
  };
  return def;
}

function isProxy(k: string): boolean {
  return /^(https?|ftp|no|all)_proxy$/i.test(k);
}

/** BuildKit's own build args (BUILDKIT_DOCKERFILE_CHECK, BUILDKIT_INLINE_CACHE, ...) configure the build, not an ARG. */
function isBuildkitArg(k: string): boolean {
  return k.startsWith('BUILDKIT_');
}

function resolveGlobals(
  plan: StagePlan,
  buildArgs: ReadonlyMap<string, string>,
  predefined: ReadonlyMap<string, string>,
  escape: string,
  consumed: Set<string>,
): Map<string, string | undefined> {
  const globals = new Map<string, string | undefined>();
  const lookup: Lookup = (n) => (globals.has(n) ? globals.get(n) : predefined.get(n));
  for (const ins of plan.globals) {
    try {
      for (const a of ins.args) {
        consumed.add(a.key);
        const value = buildArgs.has(a.key) ? buildArgs.get(a.key) : a.value !== undefined ? processWord(a.value, lookup, { escape }) : undefined;
        globals.set(a.key, value);
      }
    } catch (err) {
      throw withLocation(asDockerfileError(err), ins.range);
    }
  }
  return globals;
}

function fromImage(s: Stage, lookup: Lookup, escape: string): string {
  const image = processWord(s.from.image, lookup, { escape });
  if (image === '') throw new DockerfileError(`base name (${s.from.image}) should not be blank`);
  return image;
}

function stagePlatform(s: Stage, lookup: Lookup, escape: string, dflt: Platform): Platform {
  return s.from.platform === undefined ? dflt : parsePlatform(processWord(s.from.platform, lookup, { escape }));
}

function prefetchBases(plan: StagePlan, target: Stage, deps: Map<number, Set<number>>, lookup: Lookup, escape: string, platform: Platform, ctx: ConvertContext): void {
  const seen = new Set<number>();
  const walk = (i: number): void => {
    if (seen.has(i)) return;
    seen.add(i);
    const s = plan.stages[i] as Stage;
    try {
      const image = fromImage(s, lookup, escape);
      if (image.toLowerCase() !== 'scratch' && !baseStage(plan.stages, s, image)) {
        // Errors surface when the stage itself awaits the same promise; a named context is resolved instead of the image.
        const p = stagePlatform(s, lookup, escape, platform);
        (ctx.namedContext(image, p) ?? ctx.resolveImage(image, p)).catch(() => undefined);
      }
    } catch {
      // Reported with its line when the stage is converted.
    }
    for (const d of deps.get(i) ?? []) walk(d);
  };
  walk(target.index);
}

async function convertStage(
  ctx: ConvertContext,
  plan: StagePlan,
  s: Stage,
  args: ArgSources,
  globalLookup: Lookup,
  targetPlatform: Platform,
  runStage: (s: Stage) => Promise<StageState>,
): Promise<StageState> {
  ctx.signal?.throwIfAborted();
  const label = stageLabel(s);
  let st: StageState;
  try {
    // A stage a named context replaces is that context; its instructions are not converted (BuildKit).
    const platform = stagePlatform(s, globalLookup, ctx.escape, targetPlatform);
    const replaced = s.name !== undefined ? await ctx.namedContext(s.name, platform) : undefined;
    if (replaced) return stageFromNamed(ctx, replaced, { label, index: s.index, steps: 1, platform });
    st = await startStage(ctx, plan, s, label, globalLookup, targetPlatform, runStage);
  } catch (err) {
    throw withLocation(asDockerfileError(err), s.from.range);
  }
  for (const ins of s.instructions) {
    try {
      await dispatch(st, ins, ctx, args);
    } catch (err) {
      throw withLocation(asDockerfileError(err), ins.range);
    }
  }
  return st;
}

async function startStage(
  ctx: ConvertContext,
  plan: StagePlan,
  s: Stage,
  label: string,
  globalLookup: Lookup,
  targetPlatform: Platform,
  runStage: (s: Stage) => Promise<StageState>,
): Promise<StageState> {
  const image = fromImage(s, globalLookup, ctx.escape);
  const platform = stagePlatform(s, globalLookup, ctx.escape, targetPlatform);
  const steps = s.instructions.length + 1;
  const base = baseStage(plan.stages, s, image);
  const fromNamed = image.toLowerCase() !== 'scratch' ? await ctx.namedContext(image, platform) : undefined;
  let st: StageState;
  if (fromNamed) {
    st = stageFromNamed(ctx, fromNamed, { label, index: s.index, steps, platform });
  } else if (base) {
    const parent = await runStage(base);
    st = {
      label, index: s.index, root: parent.root, config: cloneConfig(parent.config), history: [...parent.history],
      args: new Map(parent.args), cmdSet: false, platform: parent.platform, step: 1, steps, workdirSet: parent.workdirSet ?? false,
      ...(parent.author !== undefined ? { author: parent.author } : {}),
    };
  } else if (image.toLowerCase() === 'scratch') {
    st = { label, index: s.index, root: null, config: { Env: [`PATH=${DEFAULT_PATH}`] }, history: [], args: new Map(), cmdSet: false, platform, step: 1, steps };
  } else {
    const img = await ctx.resolveImage(image, platform);
    const root = ctx.graph.add({ kind: 'image', ref: img.ref, platform: img.platform }, [], {
      name: `[${label} 1/${steps}] FROM ${image}`,
      stage: label,
      range: s.from.range,
      platform: platformString(img.platform),
    });
    st = {
      label, index: s.index, root, config: cloneConfig(img.config), history: img.history.map((h) => ({ ...h, inherited: true })),
      args: new Map(), cmdSet: false, platform: img.platform, step: 1, steps,
    };
  }
  await runTriggers(st, ctx, s);
  return st;
}

/** ONBUILD triggers of the base run right after FROM, and are not passed on. */
async function runTriggers(st: StageState, ctx: ConvertContext, s: Stage): Promise<void> {
  const triggers = st.config.OnBuild ?? [];
  if (triggers.length === 0) return;
  delete st.config.OnBuild;
  for (const text of triggers) {
    const m = /^\s*(\S+)\s*([\s\S]*)$/.exec(text);
    if (!m) continue;
    const keyword = (m[1] as string).toUpperCase();
    if (keyword === 'ONBUILD' || keyword === 'FROM' || keyword === 'MAINTAINER') {
      throw new DockerfileError(`${keyword} isn't allowed as an ONBUILD trigger (${text})`);
    }
    const ins = parseInstruction({ keyword: m[1] as string, original: text, rest: (m[2] ?? '').trim(), heredocs: [], range: s.from.range }, ctx.escape);
    await dispatch(st, ins, ctx, { buildArgs: ctx.buildArgs, globals: new Map(), predefined: new Map() });
  }
}

async function dispatch(st: StageState, ins: Instruction, ctx: ConvertContext, args: ArgSources): Promise<void> {
  switch (ins.kind) {
    case 'RUN':
      return dispatchRun(st, ins, ctx);
    case 'COPY':
    case 'ADD':
      return dispatchCopy(st, ins, ctx);
    case 'ENV':
    case 'LABEL':
      return dispatchEnvLabel(st, ins, ctx);
    case 'ARG':
      return dispatchArg(st, ins, ctx, args);
    case 'EXPOSE':
      return dispatchExpose(st, ins, ctx);
    case 'USER':
    case 'WORKDIR':
    case 'STOPSIGNAL':
    case 'MAINTAINER':
      return dispatchString(st, ins, ctx);
    case 'VOLUME':
      return dispatchVolume(st, ins, ctx);
    case 'SHELL':
      return dispatchShell(st, ins);
    case 'HEALTHCHECK':
      return dispatchHealthcheck(st, ins, ctx);
    case 'CMD':
    case 'ENTRYPOINT':
      return dispatchCmd(st, ins, ctx);
    case 'ONBUILD':
      return dispatchOnbuild(st, ins);
    case 'FROM':
      throw new DockerfileError('FROM inside a stage');
  }
}
