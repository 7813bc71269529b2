import { redactUrlCredentials } from '../../core/redact.js';
import type { Digest } from '../../core/digest.js';
import { DEFAULT_PATH, platformString, type ContainerConfig, type Platform } from '../../core/oci.js';
import type { Graph, HistoryStep, ImageResolver, ResolvedImage, Warning } from '../graph/index.js';
import type { SourceRange } from '../../core/errors.js';
import { RULES } from './check-rules.js';
import { Checks } from './checks.js';
import type { Lookup } from './lexer.js';

/** What a stage is while its instructions are dispatched; FROM <stage> starts from a copy. */
export interface StageState {
  /** Display name: the AS name, or `stage-N`. */
  readonly label: string;
  readonly index: number;
  root: Digest | null;
  config: ContainerConfig;
  history: HistoryStep[];
  /** Build args declared in scope; undefined = declared without a value. */
  args: Map<string, string | undefined>;
  /** CMD was set in this stage (an ENTRYPOINT then keeps it). */
  cmdSet: boolean;
  platform: Platform;
  author?: string;
  /** Step counter for progress names. */
  step: number;
  readonly steps: number;
  /** A WORKDIR was set in this stage or a stage it builds on (WorkdirRelativePath, CopyRelativeDestination). */
  workdirSet?: boolean;
  /** Where this stage last set CMD, ENTRYPOINT or HEALTHCHECK (MultipleInstructionsDisallowed). */
  lastSet?: Map<string, SourceRange>;
}

/** A named context (`--build-context`) as the stage or COPY that names it sees it. */
export interface NamedInput {
  /** The vertex to copy or mount from. */
  readonly input: Digest;
  /** Its image config, when it is an image. */
  readonly image?: ResolvedImage;
  /** A local directory has no layers: FROM copies it into a filesystem first. */
  readonly layered: boolean;
}

/** What every dispatcher may use, shared by all stages of one conversion. */
export interface ConvertContext {
  readonly graph: Graph;
  readonly fileName: string;
  readonly escape: string;
  readonly buildArgs: ReadonlyMap<string, string>;
  readonly warnings: Warning[];
  readonly signal?: AbortSignal;
  readonly resolver: ImageResolver;
  /** The build context vertex, added on first use. */
  context(): Digest;
  /** Resolve an image once per (ref, platform). */
  resolveImage(ref: string, platform: Platform): Promise<ResolvedImage>;
  /** The final state of another stage (converted on demand), by name or index. */
  stageRoot(ref: string, from: StageState): Promise<{ root: Digest | null } | undefined>;
  /** A vertex standing for an empty filesystem (COPY --from a scratch stage). */
  emptyRoot(): Digest;
  /** The named context (`--build-context`) a stage or image name resolves to first, if any. */
  namedContext(name: string, platform: Platform): Promise<NamedInput | undefined> | undefined;
  /** Build args that some ARG declared (the others get a warning). */
  readonly consumedArgs: Set<string>;
  /** Network of a RUN without --network; in the exec definition, so it is part of the cache key. */
  readonly defaultNetwork?: 'default' | 'none' | 'host';
  /** Build checks report here (checks.ts). */
  readonly checks: Checks;
  /** The context's .dockerignore patterns (CopyIgnoredFile). */
  readonly dockerignore: readonly string[];
}

export function cloneConfig(c: ContainerConfig): ContainerConfig {
  return structuredClone(c);
}

/** Proxy variables: passed to RUN without an ARG, never written to history (BuildKit's defaults). */
export const PROXY_ARGS = new Set([
  'HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy',
]);

export function envMap(env: readonly string[] | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const kv of env ?? []) {
    const i = kv.indexOf('=');
    if (i < 0) m.set(kv, '');
    else m.set(kv.slice(0, i), kv.slice(i + 1));
  }
  return m;
}

/**
 * The scope of `st` for expanding words of the instruction at `range`, which
 * reports each name it does not find as UndefinedVar: neither ENV nor a
 * declared ARG (even one without a value) defines it.
 */
export function checkedLookup(st: StageState, ctx: ConvertContext, range: SourceRange): Lookup {
  const env = envMap(st.config.Env);
  return (n) => {
    // ENV wins over ARG of the same name (Docker's rule).
    const v = env.get(n) ?? st.args.get(n);
    if (v === undefined && !env.has(n) && !st.args.has(n)) ctx.checks.report(RULES.UndefinedVar, range, n, Checks.closest(n, [...env.keys(), ...st.args.keys()]));
    return v;
  };
}

/** Replace in place when the key exists (Docker keeps the order), else append. */
export function setEnv(config: ContainerConfig, key: string, value: string): void {
  const env = config.Env ? [...config.Env] : [];
  const i = env.findIndex((kv) => kv === key || kv.startsWith(`${key}=`));
  if (i >= 0) env[i] = `${key}=${value}`;
  else env.push(`${key}=${value}`);
  config.Env = env;
}

/** The environment a RUN sees: image env (PATH defaulted), then build args in scope, then proxy args. */
export function runEnv(st: StageState, buildArgs: ReadonlyMap<string, string>): string[] {
  const env = [...(st.config.Env ?? [])];
  const keys = envMap(env);
  if (!keys.has('PATH')) {
    env.push(`PATH=${DEFAULT_PATH}`);
    keys.set('PATH', DEFAULT_PATH);
  }
  for (const [k, v] of st.args) {
    if (v === undefined || keys.has(k)) continue;
    env.push(`${k}=${v}`);
    keys.set(k, v);
  }
  for (const [k, v] of buildArgs) {
    if (PROXY_ARGS.has(k) && !keys.has(k)) env.push(`${k}=${v}`);
  }
  return env;
}

export function stepName(st: StageState, original: string): string {
  st.step++;
  // Names reach progress output and logs: a URL's password must not (the graph keeps the URL itself).
  const shown = redactUrlCredentials(original);
  const text = shown.length > 200 ? `${shown.slice(0, 200)}...` : shown;
  return `[${st.label} ${st.step}/${st.steps}] ${text.replace(/\s*\n[\s\S]*$/, '')}`;
}

/** Adds a vertex and its side-map entries. */
export function addVertex(
  ctx: ConvertContext,
  st: StageState,
  def: Parameters<Graph['add']>[0],
  inputs: readonly Digest[],
  name: string,
  range: SourceRange,
): Digest {
  const d = ctx.graph.add(def, inputs, { name, stage: st.label, range, platform: platformString(st.platform) });
  return d;
}

export function pushHistory(st: StageState, created_by: string, vertex?: Digest): void {
  st.history.push(vertex ? { created_by, vertex } : { created_by, empty_layer: true });
}
