import { posix } from 'node:path';
import type { SourceRange } from '../../core/errors.js';
import type { HealthConfig } from '../../core/oci.js';
import { looksLikeSecret, RULES } from './check-rules.js';
import { DockerfileError } from './errors.js';
import type {
  ArgInstruction,
  CmdInstruction,
  CommandForm,
  ExposeInstruction,
  HealthcheckInstruction,
  KeyValueInstruction,
  OnbuildInstruction,
  ShellInstruction,
  StringInstruction,
  VolumeInstruction,
} from './instructions.js';
import { processWord, processWords, type Lookup } from './lexer.js';
import {
  addVertex,
  PROXY_ARGS,
  pushHistory,
  setEnv,
  checkedLookup,
  stepName,
  type ConvertContext,
  type StageState,
} from './state.js';
import { parsePortSpec } from './ports.js';
import { checkSignal, parseUserSpec } from './values.js';

/** Instructions that change the image config (and WORKDIR's mkdir). */

export const DEFAULT_SHELL = ['/bin/sh', '-c'];

export function shellOf(st: StageState): string[] {
  return st.config.Shell && st.config.Shell.length > 0 ? [...st.config.Shell] : [...DEFAULT_SHELL];
}

export function commandArgs(st: StageState, cmd: CommandForm): string[] {
  return cmd.json ? [...cmd.args] : [...shellOf(st), cmd.text];
}

/** Go's `%q` of a []string, as BuildKit writes CMD/ENTRYPOINT history. */
function quoteList(args: readonly string[]): string {
  return `[${args.map((a) => JSON.stringify(a)).join(' ')}]`;
}

export function dispatchEnvLabel(st: StageState, ins: KeyValueInstruction, ctx: ConvertContext): void {
  const lookup = checkedLookup(st, ctx, ins.range);
  if (ins.legacy) ctx.checks.report(RULES.LegacyKeyValueFormat, ins.range, ins.kind);
  const opts = { escape: ctx.escape };
  // Every pair is expanded against the scope before the instruction: `ENV A=1 B=$A` sees the old A.
  const pairs = ins.pairs.map((p) => ({ key: processWord(p.key, lookup, opts), value: processWord(p.value, lookup, opts) }));
  for (const { key, value } of pairs) {
    if (key === '') throw new DockerfileError(`${ins.kind} names can not be blank`);
    if (ins.kind === 'ENV') {
      if (looksLikeSecret(key)) ctx.checks.report(RULES.SecretsUsedInArgOrEnv, ins.range, 'ENV', key);
      setEnv(st.config, key, value);
    }
    else st.config.Labels = { ...(st.config.Labels ?? {}), [key]: value };
  }
  const text = pairs.map((p) => `${p.key}=${p.value}`);
  pushHistory(st, `${ins.kind} ${text.join(' ')}`);
}

/** Values an `ARG X` without default takes: --build-arg, then the global ARG, then the predefined platform args. */
export interface ArgSources {
  readonly buildArgs: ReadonlyMap<string, string>;
  readonly globals: ReadonlyMap<string, string | undefined>;
  readonly predefined: ReadonlyMap<string, string>;
}

export function dispatchArg(st: StageState, ins: ArgInstruction, ctx: ConvertContext, src: ArgSources): void {
  const shown: string[] = [];
  for (const a of ins.args) {
    if (looksLikeSecret(a.key)) ctx.checks.report(RULES.SecretsUsedInArgOrEnv, ins.range, 'ARG', a.key);
    const lookup = checkedLookup(st, ctx, ins.range);
    let value: string | undefined;
    if (src.buildArgs.has(a.key)) value = src.buildArgs.get(a.key);
    else if (a.value !== undefined) value = processWord(a.value, lookup, { escape: ctx.escape });
    else if (src.globals.has(a.key)) value = src.globals.get(a.key);
    else value = src.predefined.get(a.key);
    st.args.set(a.key, value);
    ctx.consumedArgs.add(a.key);
    if (!PROXY_ARGS.has(a.key)) shown.push(value === undefined ? a.key : `${a.key}=${value}`);
  }
  if (shown.length > 0) pushHistory(st, `ARG ${shown.join(' ')}`);
}

export function dispatchExpose(st: StageState, ins: ExposeInstruction, ctx: ConvertContext): void {
  const words = processWords(ins.text, checkedLookup(st, ctx, ins.range), { escape: ctx.escape });
  const ports = words.flatMap((w) => {
    const spec = parsePortSpec(w);
    if (spec.protoNotLower) ctx.checks.report(RULES.ExposeProtoCasing, ins.range, w);
    if (spec.hostSide) ctx.checks.report(RULES.ExposeInvalidFormat, ins.range, w);
    return spec.ports;
  });
  const exposed = { ...(st.config.ExposedPorts ?? {}) };
  for (const p of ports) exposed[p] = {};
  st.config.ExposedPorts = exposed;
  pushHistory(st, `EXPOSE ${ports.join(' ')}`);
}

export function dispatchString(st: StageState, ins: StringInstruction, ctx: ConvertContext): void {
  const lookup = checkedLookup(st, ctx, ins.range);
  switch (ins.kind) {
    case 'MAINTAINER':
      st.author = ins.value;
      pushHistory(st, `MAINTAINER ${ins.value}`);
      return;
    case 'USER': {
      const user = processWord(ins.value, lookup, { escape: ctx.escape });
      // Empty after expansion (`USER $name` with no value) is BuildKit's default user, root, not an error.
      if (user !== '') parseUserSpec(user, 'USER');
      st.config.User = user;
      pushHistory(st, `USER ${user}`);
      return;
    }
    case 'STOPSIGNAL': {
      const sig = checkSignal(processWord(ins.value, lookup, { escape: ctx.escape }));
      st.config.StopSignal = sig;
      pushHistory(st, `STOPSIGNAL ${sig}`);
      return;
    }
    case 'WORKDIR':
      dispatchWorkdir(st, ins, ctx, lookup);
      return;
  }
}

/** The absolute, cleaned directory `p` names when the current one is `cwd`. */
export function resolveWorkdir(cwd: string | undefined, p: string): string {
  return posix.resolve('/', cwd || '/', p);
}

function dispatchWorkdir(st: StageState, ins: StringInstruction, ctx: ConvertContext, lookup: Lookup): void {
  const raw = processWord(ins.value, lookup, { escape: ctx.escape });
  if (raw === '') throw new DockerfileError('WORKDIR can not be empty');
  // Only the first WORKDIR of a stage chain matters: later relative ones follow it.
  if (!st.workdirSet && !raw.startsWith('/')) ctx.checks.report(RULES.WorkdirRelativePath, ins.range, raw);
  st.workdirSet = true;
  const wd = resolveWorkdir(st.config.WorkingDir, raw);
  st.config.WorkingDir = wd;
  const name = stepName(st, ins.original);
  if (wd === '/') {
    pushHistory(st, `WORKDIR ${wd}`);
    return;
  }
  // BuildKit creates the directory (owned by the current USER) so a later step finds it.
  const chown = st.config.User ? parseUserSpec(st.config.User, 'USER') : undefined;
  const def = {
    kind: 'file' as const,
    hasRoot: st.root !== null,
    actions: [{ op: 'mkdir' as const, path: wd, mode: 0o755, ...(chown ? { chown } : {}) }],
  };
  st.root = addVertex(ctx, st, def, st.root ? [st.root] : [], name, ins.range);
  pushHistory(st, `WORKDIR ${wd}`, st.root);
}

export function dispatchVolume(st: StageState, ins: VolumeInstruction, ctx: ConvertContext): void {
  const lookup = checkedLookup(st, ctx, ins.range);
  const vols = ins.volumes.map((v) => processWord(v, lookup, { escape: ctx.escape }));
  const volumes = { ...(st.config.Volumes ?? {}) };
  for (const v of vols) {
    if (v.trim() === '') throw new DockerfileError('VOLUME specified can not be an empty string');
    volumes[v] = {};
  }
  st.config.Volumes = volumes;
  pushHistory(st, `VOLUME [${vols.join(' ')}]`);
}

export function dispatchShell(st: StageState, ins: ShellInstruction): void {
  st.config.Shell = [...ins.shell];
  pushHistory(st, `SHELL [${ins.shell.join(' ')}]`);
}

export function dispatchHealthcheck(st: StageState, ins: HealthcheckInstruction, ctx: ConvertContext): void {
  checkSetOnce(st, ins.kind, ins.range, ctx);
  const hc: HealthConfig = { Test: [...ins.test] };
  if (ins.interval !== undefined) hc.Interval = ins.interval;
  if (ins.timeout !== undefined) hc.Timeout = ins.timeout;
  if (ins.startPeriod !== undefined) hc.StartPeriod = ins.startPeriod;
  if (ins.startInterval !== undefined) hc.StartInterval = ins.startInterval;
  if (ins.retries !== undefined) hc.Retries = ins.retries;
  st.config.Healthcheck = hc;
  pushHistory(st, `HEALTHCHECK ${ins.test.join(' ')}`);
}

export function dispatchCmd(st: StageState, ins: CmdInstruction, ctx: ConvertContext): void {
  checkSetOnce(st, ins.kind, ins.range, ctx);
  if (!ins.cmd.json && !(st.config.Shell && st.config.Shell.length > 0)) ctx.checks.report(RULES.JSONArgsRecommended, ins.range, ins.kind);
  const args = commandArgs(st, ins.cmd);
  if (ins.kind === 'CMD') {
    st.config.Cmd = args;
    st.cmdSet = true;
  } else {
    st.config.Entrypoint = args;
    // An ENTRYPOINT drops a CMD inherited from the base, not one set in this stage.
    if (!st.cmdSet) delete st.config.Cmd;
  }
  pushHistory(st, `${ins.kind} ${quoteList(args)}`);
}

/** MultipleInstructionsDisallowed: an earlier CMD, ENTRYPOINT or HEALTHCHECK of the stage is overridden; it is the one reported. */
function checkSetOnce(st: StageState, keyword: string, range: SourceRange, ctx: ConvertContext): void {
  st.lastSet ??= new Map();
  const earlier = st.lastSet.get(keyword);
  if (earlier) ctx.checks.report(RULES.MultipleInstructionsDisallowed, earlier, keyword, range.startLine);
  st.lastSet.set(keyword, range);
}

export function dispatchOnbuild(st: StageState, ins: OnbuildInstruction): void {
  st.config.OnBuild = [...(st.config.OnBuild ?? []), ins.expression];
  pushHistory(st, `ONBUILD ${ins.expression}`);
}
