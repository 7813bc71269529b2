import type { Digest } from '../../core/digest.js';
import type { NetworkMode } from '../../core/build.js';
import { execPlatform, type ExecDef, type ExecMount } from '../graph/index.js';
import { commandArgs, shellOf } from './convert-meta.js';
import { DockerfileError } from './errors.js';
import type { RunInstruction } from './instructions.js';
import { processWord } from './lexer.js';
import { parseMount } from './mounts.js';
import { addVertex, checkedLookup, PROXY_ARGS, pushHistory, runEnv, stepName, type ConvertContext, type StageState } from './state.js';
import { parseUserSpec } from './values.js';

/** RUN → an exec vertex (plus the inputs its mounts read). */

const NETWORKS: readonly NetworkMode[] = ['default', 'none', 'host'];
/** Where BuildKit puts agent sockets that name no target: this prefix and their index. */
const SSH_AGENT_DIR = '/run/buildkit/ssh_agent.';
/** Where BuildKit mounts a heredoc script that has a shebang. */
const PIPES_DIR = '/dev/pipes/';

/** Collects a vertex's inputs; the same digest keeps its first index. */
class Inputs {
  readonly list: Digest[] = [];
  index(d: Digest): number {
    const i = this.list.indexOf(d);
    if (i >= 0) return i;
    this.list.push(d);
    return this.list.length - 1;
  }
}

export async function dispatchRun(st: StageState, ins: RunInstruction, ctx: ConvertContext): Promise<void> {
  const name = stepName(st, ins.original);
  const inputs = new Inputs();
  if (st.root) inputs.index(st.root);
  const mounts: ExecMount[] = [];

  const network = ins.network ?? ctx.defaultNetwork ?? 'default';
  if (!(NETWORKS as readonly string[]).includes(network)) {
    throw new DockerfileError(`RUN: invalid --network=${network} (want default, none or host)`);
  }
  if (ins.security !== undefined && ins.security !== 'sandbox' && ins.security !== 'insecure') {
    throw new DockerfileError(`RUN: invalid --security=${ins.security} (want sandbox or insecure)`);
  }

  let args: string[];
  if (ins.heredocs.length > 0 && !ins.cmd.json) {
    args = heredocArgs(st, ins, ctx, inputs, mounts, name);
  } else {
    args = commandArgs(st, ins.cmd);
  }

  const lookup = checkedLookup(st, ctx, ins.range);
  let sshCount = 0;
  for (const text of ins.mounts) {
    const m = parseMount(processWord(text, lookup, { escape: ctx.escape }), st.config.WorkingDir || '/');
    // BuildKit numbers default agent sockets by their order among the RUN's ssh mounts.
    mounts.push(await toExecMount(m.type === 'ssh' ? { ...m, target: m.target ?? `${SSH_AGENT_DIR}${sshCount++}` } : m, st, ctx, inputs));
  }

  const user = st.config.User ? parseUserSpec(st.config.User, 'USER') : { user: '0' };
  const def: ExecDef = {
    kind: 'exec',
    args,
    env: withSshAuthSock(runEnv(st, ctx.buildArgs), mounts),
    cwd: st.config.WorkingDir || '/',
    user,
    network: network as NetworkMode,
    mounts,
    hasRoot: st.root !== null,
    ...(ins.security === 'insecure' ? { security: 'insecure' as const } : {}),
    ...execPlatform(st.platform),
  };
  st.root = addVertex(ctx, st, def, inputs.list, name, ins.range);
  pushHistory(st, `RUN ${historyPrefix(st)}${args.join(' ')} # buildkit`, st.root);
}

/** SSH_AUTH_SOCK names the first agent socket unless the environment already sets it (BuildKit's rule). */
function withSshAuthSock(env: string[], mounts: readonly ExecMount[]): string[] {
  const first = mounts.find((m) => m.type === 'ssh');
  if (!first || env.some((kv) => kv.startsWith('SSH_AUTH_SOCK='))) return env;
  return [...env, `SSH_AUTH_SOCK=${first.target}`];
}

/** BuildKit's `|N K=V ...` prefix: the build args a RUN saw, proxies left out. */
function historyPrefix(st: StageState): string {
  const shown = [...st.args].filter(([k, v]) => v !== undefined && !PROXY_ARGS.has(k)).map(([k, v]) => `${k}=${v}`);
  return shown.length > 0 ? `|${shown.length} ${shown.join(' ')} ` : '';
}

/**
 * BuildKit's heredoc RUN: `RUN <<EOF` alone runs the body with the shell (or,
 * with a shebang, as a script file mounted read-only); anything more complex is
 * handed to the shell as a real heredoc.
 */
function heredocArgs(st: StageState, ins: RunInstruction, ctx: ConvertContext, inputs: Inputs, mounts: ExecMount[], name: string): string[] {
  const text = ins.cmd.json ? '' : ins.cmd.text;
  const only = ins.heredocs.length === 1 ? ins.heredocs[0] : undefined;
  if (only && new RegExp(`^<<-?(["']?)${only.name.replace(/[.\-]/g, '\\$&')}\\1$`).test(text)) {
    if (only.data.startsWith('#!')) {
      const script = ctx.graph.add(
        { kind: 'file', hasRoot: false, actions: [{ op: 'mkfile', path: `/${only.name}`, data: only.data, mode: 0o755 }] },
        [],
        { name: `${name} (heredoc ${only.name})`, stage: st.label, range: ins.range },
      );
      mounts.push({ type: 'bind', target: PIPES_DIR, input: inputs.index(script), source: '/', readonly: true });
      return [`${PIPES_DIR}${only.name}`];
    }
    return [...shellOf(st), only.data];
  }
  let full = text;
  for (const h of ins.heredocs) full += `\n${h.data}${h.name}`;
  return [...shellOf(st), full];
}

async function toExecMount(m: ReturnType<typeof parseMount>, st: StageState, ctx: ConvertContext, inputs: Inputs): Promise<ExecMount> {
  const fromInput = async (from: string | undefined): Promise<number> => {
    if (from === undefined || from === '') return inputs.index(ctx.context());
    const stage = await ctx.stageRoot(from, st);
    if (stage) return inputs.index(stage.root ?? ctx.emptyRoot());
    const img = await ctx.resolveImage(from, st.platform);
    return inputs.index(ctx.graph.add({ kind: 'image', ref: img.ref, platform: img.platform }, [], { name: `[internal] image ${from}` }));
  };
  switch (m.type) {
    case 'bind':
      return { type: 'bind', target: m.target, input: await fromInput(m.from), source: m.source, readonly: m.readonly };
    case 'cache': {
      const base = { type: 'cache' as const, target: m.target, id: m.id, sharing: m.sharing, mode: m.mode, uid: m.uid, gid: m.gid, readonly: m.readonly };
      if (m.from === undefined) return m.source === undefined ? base : { ...base, source: m.source };
      return { ...base, input: await fromInput(m.from), source: m.source ?? '/' };
    }
    case 'ssh':
      return { ...m, target: m.target! };
    case 'secret':
      return m;
    default:
      return m;
  }
}
