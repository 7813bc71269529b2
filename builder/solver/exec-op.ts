import { randomUUID } from 'node:crypto';
import { chmod, chown, lstat, mkdir, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AsyncStack } from '../../core/dispose.js';
import { CodedError } from '../../core/errors.js';
import { mountAt, unmountAt } from '../../core/mounter.js';
import type { Mount } from '../../core/mount.js';
import { resolveInRoot } from '../../core/safe-path.js';
import type { LayerRef } from '../../cache/index.js';
import type { ExecDef, ExecMount } from '../graph/index.js';
import { stepLimitsOf } from '../executor/index.js';
import { readUpperXattrs } from '../layers/index.js';
import { stepFailure } from './errors.js';
import { contextView } from './context-view.js';
import { grantRefusal } from './grants.js';
import { LogSink } from './log-sink.js';
import { forwardAgent } from './ssh-forward.js';
import { sshMissing } from './ssh-check.js';
import { prepareOn, writeAndCommit } from './snapshot-step.js';
import { localDir, type OpContext, type VertexResult } from './types.js';

/**
 * RUN: a fresh snapshot on the root input, the process in the sandbox, the
 * upper dir as the new layer. Mount-target stubs runc creates are removed by
 * the executor, so `--mount` leaves nothing in the layer.
 */
export async function runExec(def: ExecDef, inputs: readonly VertexResult[], ctx: OpContext): Promise<LayerRef[]> {
  // The builder checked the whole graph before anything ran; checked again here, at the moment of use.
  checkGrants(def, ctx);
  const { deps, opts, vertex } = ctx;
  const rootLayers = def.hasRoot ? inputs[0]!.layers : [];
  await using stack = new AsyncStack();
  const step = await prepareOn(ctx, rootLayers, stack, 'exec');

  const merged = await tmpMountDir(ctx, stack);
  await mountAt(step.mounts[0]!, merged);
  // Unmounted right after the step (the diff reads the upper dir) or, on failure, by the stack: once either way.
  let mounted = true;
  const unmountRoot = async () => {
    if (!mounted) return;
    mounted = false;
    await unmountAt(merged);
  };
  stack.defer(unmountRoot);

  const extra: Mount[] = [];
  const secretEnv: Record<string, string> = {};
  for (const m of def.mounts) {
    const mount = await this_mount(m, inputs, ctx, stack, secretEnv);
    if (mount) extra.push(mount);
  }

  // Full logs beside the state (`<root>/logs`, tmpDir being `<root>/tmp`); one directory per build, keyed by its emit.
  const logs = new LogSink(vertex.digest, opts.emit, [...opts.secrets.values()], undefined, {
    dir: path.join(path.dirname(deps.tmpDir), 'logs'),
    build: opts.emit,
    fileCap: opts.limits.maxStepLogBytes,
  });
  const user = def.user.group !== undefined ? `${def.user.user}:${def.user.group}` : def.user.user;
  let result;
  try {
    result = await deps.executor.run(
      { args: def.args, env: def.env, cwd: def.cwd, user },
      {
        rootfs: [{ type: 'bind', source: merged, options: ['rbind', 'rw'] }],
        mounts: extra,
        network: def.network === 'default' ? 'none' : def.network,
        ...(def.security ? { security: def.security } : {}),
        limits: stepLimitsOf(opts.limits),
        secretEnv,
        onStdout: (c) => logs.write('stdout', c),
        onStderr: (c) => logs.write('stderr', c),
        signal: opts.signal,
      },
    );
  } finally {
    logs.end();
  }
  if (result.exitCode !== 0 || result.signal || result.timedOut) {
    throw stepFailure(vertex.digest, def.args.join(' '), result);
  }
  // One getfattr serves both the opaque marks below and the layer's xattrs. It reads
  // the upper dir while the unmount runs: nothing writes there once the step has ended.
  const [, xattrs] = await Promise.all([unmountRoot(), readUpperXattrs(step.mounts, opts.signal)]);
  // Creating a mount stub copied its parent up; the stub is gone, the unchanged copy must go too.
  await dropCopiedUpParents(step.mounts[0]!, [...def.mounts.flatMap((m) => (m.target !== undefined ? [m.target] : [])), ...RUNTIME_TARGETS], xattrs.opaque);

  return await writeAndCommit(ctx, step, rootLayers, xattrs);
}

function checkGrants(def: ExecDef, ctx: OpContext): void {
  const refusal = grantRefusal(def, {
    operatorAllowsHostNetwork: ctx.deps.allowHostNetwork ?? false,
    operatorAllowsInsecure: ctx.deps.allowSecurityInsecure ?? false,
    allow: ctx.opts.allow ?? [],
  });
  if (refusal !== undefined) throw new CodedError('PERMISSION_DENIED', refusal);
}

// Named so the stack trace says which --mount failed.
async function this_mount(
  m: ExecMount,
  inputs: readonly VertexResult[],
  ctx: OpContext,
  stack: AsyncStack,
  secretEnv: Record<string, string>,
): Promise<Mount | undefined> {
  switch (m.type) {
    case 'tmpfs':
      return { type: 'tmpfs', source: 'tmpfs', target: m.target, options: ['nosuid', 'nodev', ...(m.size ? [`size=${m.size}`] : [])] };
    case 'bind': {
      const input = ctx.graph.get(ctx.vertex.inputs[m.input]!);
      const dir = await inputDir(ctx, m.input, inputs, stack);
      // A context is mounted as it was sent: what the .dockerignore excludes is not there.
      const src = input.def.kind === 'local' ? await contextView(dir, input.def.excludes, ctx.deps.tmpDir, stack, ctx.opts.signal) : dir;
      const host = await resolveInRoot(src, m.source);
      // Checked here, before the sandbox: runc's own error would name this host path.
      if (!(await lstat(host).catch(() => undefined))) {
        throw new CodedError('NOT_FOUND', `RUN --mount=type=bind: source "${m.source}" not found in ${inputName(ctx, m.input)}`);
      }
      if (m.readonly) return { type: 'bind', source: host, target: m.target, options: ['rbind', 'ro'] };
      // rw bind mounts take writes that are thrown away after the step (BuildKit semantics).
      const scratch = path.join(ctx.deps.tmpDir, `rw-${randomUUID()}`);
      await mkdir(scratch, { mode: 0o700 });
      // Only the container's mount namespace ever mounts this, so a recursive delete is safe.
      stack.defer(() => rm(scratch, { recursive: true, force: true }));
      await mkdir(path.join(scratch, 'u'));
      await mkdir(path.join(scratch, 'w'));
      return { type: 'overlay', source: 'overlay', target: m.target, options: [`lowerdir=${host}`, `upperdir=${scratch}/u`, `workdir=${scratch}/w`] };
    }
    case 'cache': {
      const lease = await ctx.deps.cacheMounts.acquire(m.id, m.sharing, { mode: m.mode, uid: m.uid, gid: m.gid, signal: ctx.opts.signal });
      stack.defer(() => lease.release());
      return { type: 'bind', source: lease.dir, target: m.target, options: ['rbind', m.readonly ? 'ro' : 'rw'] };
    }
    case 'ssh': {
      const agent = ctx.opts.ssh?.get(m.id);
      if (agent === undefined) {
        if (m.required) throw sshMissing(m.id);
        return undefined;
      }
      const forwarded = await forwardAgent(agent, ctx.deps.tmpDir, m);
      stack.defer(() => forwarded[Symbol.asyncDispose]());
      return { type: 'bind', source: forwarded.socket, target: m.target, options: ['rbind', 'nosuid', 'nodev', 'noexec'] };
    }
    case 'secret': {
      const value = ctx.opts.secrets.get(m.id);
      if (value === undefined) {
        if (m.required) throw new CodedError('NOT_FOUND', `secret ${m.id} not found: pass it with --secret id=${m.id},src=FILE`);
        return undefined;
      }
      if (m.env) secretEnv[m.env] = value.toString('utf8');
      if (m.target === undefined) return undefined;
      // Secret files live on a tmpfs so their bytes never reach the state disk.
      const dir = await tmpMountDir(ctx, stack);
      await mountAt({ type: 'tmpfs', source: 'tmpfs', options: ['size=1m', 'mode=0700'] }, dir);
      stack.defer(() => unmountAt(dir));
      const file = path.join(dir, 'secret');
      await writeFile(file, value, { mode: m.mode });
      await chmod(file, m.mode);
      await chown(file, m.uid, m.gid);
      return { type: 'bind', source: file, target: m.target, options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] };
    }
  }
}

/** An input as a Dockerfile author names it: the build context, a stage, an image. */
function inputName(ctx: OpContext, index: number): string {
  const d = ctx.vertex.inputs[index]!;
  const v = ctx.graph.get(d);
  if (v.def.kind === 'local') return v.def.name === 'context' ? 'the build context' : `the context ${v.def.name.replace(/^named:/, '')}`;
  if (v.def.kind === 'image') return `image ${v.def.ref}`;
  const stage = ctx.graph.meta.get(d)?.stage;
  return stage ? `stage ${stage}` : 'the stage it names';
}

/** A readable directory with an input's filesystem: the context, or a mounted read-only view of a stage. */
export async function inputDir(ctx: OpContext, index: number, inputs: readonly VertexResult[], stack: AsyncStack): Promise<string> {
  const inputVertex = ctx.graph.get(ctx.vertex.inputs[index]!);
  if (inputVertex.def.kind === 'local') {
    const dir = localDir(ctx.opts, inputVertex.def.name);
    if (!dir) throw new CodedError('INVALID_ARGUMENT', 'this step reads the build context, but none was given');
    return dir;
  }
  const result = inputs[index]!;
  if (result.file) return path.dirname(result.file.path);
  const name = await ctx.materializer.ensure(result.layers, ctx.opts);
  const dir = await tmpMountDir(ctx, stack);
  if (name === null) return dir; // empty filesystem (scratch)
  const mounts = await ctx.deps.snapshotter.view(name);
  await mountAt(mounts[0]!, dir);
  stack.defer(() => unmountAt(dir));
  return dir;
}

/** An empty directory under tmpDir, removed (never recursively) when the stack unwinds. */
export async function tmpMountDir(ctx: OpContext, stack: AsyncStack): Promise<string> {
  const dir = path.join(ctx.deps.tmpDir, `m-${randomUUID()}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  stack.defer(() => rmdir(dir).catch(() => undefined));
  return dir;
}

/** Where the executor mounts things in every step; runc makes stubs for those the image lacks. */
const RUNTIME_TARGETS = ['/proc', '/sys', '/sys/fs/cgroup', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/etc/hosts', '/etc/resolv.conf', '/etc/hostname'];

/**
 * runc creates a missing mount target inside an existing directory, so
 * overlay copies that directory up; the executor removes the stub, but the
 * copied-up directory would stay in the diff as an entry (`run/` for a secret
 * at /run/secrets/s), telling the world a mount was there. Remove an ancestor
 * of a mount target from the upper dir when it is empty there, not opaque, and
 * has the mode, owner and mtime of the directory below it (BuildKit's overlay
 * differ skips such directories the same way). Runs on the unmounted upper dir.
 */
async function dropCopiedUpParents(mount: Mount, targets: readonly string[], opaque: ReadonlySet<string>): Promise<void> {
  if (mount.type !== 'overlay') return;
  const upper = mount.options.find((o) => o.startsWith('upperdir='))?.slice('upperdir='.length);
  const lowers = mount.options.find((o) => o.startsWith('lowerdir='))?.slice('lowerdir='.length).split(':') ?? [];
  if (!upper || lowers.length === 0) return;
  const candidates = new Set<string>();
  for (const t of targets) {
    const parts = path.posix.normalize(t).split('/').filter((p) => p !== '' && p !== '..');
    for (let i = parts.length - 1; i >= 1; i--) candidates.add(parts.slice(0, i).join('/'));
  }
  // Deepest first, so a parent emptied by removing its child is seen empty.
  for (const rel of [...candidates].sort((a, b) => b.split('/').length - a.split('/').length)) {
    const dir = path.join(upper, rel);
    const st = await lstat(dir).catch(() => undefined);
    if (!st?.isDirectory() || (await readdir(dir)).length > 0) continue;
    const below = await topmostLower(lowers, rel);
    if (!below?.isDirectory()) continue;
    if (st.mode !== below.mode || st.uid !== below.uid || st.gid !== below.gid || Math.floor(st.mtimeMs / 1000) !== Math.floor(below.mtimeMs / 1000)) continue;
    if (opaque.has(dir)) continue;
    await rmdir(dir);
  }
}

/** What the merged view showed at `rel` before the step: the first lower holding it. */
async function topmostLower(lowers: readonly string[], rel: string) {
  for (const l of lowers) {
    const st = await lstat(path.join(l, rel)).catch(() => undefined);
    if (st) return st;
  }
  return undefined;
}
