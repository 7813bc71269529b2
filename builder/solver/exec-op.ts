import { randomUUID } from 'node:crypto';
import { chmod, chown, mkdir, rm, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AsyncStack } from '../../core/dispose.js';
import { CodedError } from '../../core/errors.js';
import { mountAt, unmountAt } from '../../core/mounter.js';
import type { Mount } from '../../core/mount.js';
import { resolveInRoot } from '../../core/safe-path.js';
import type { LayerRef } from '../../cache/index.js';
import type { ExecDef, ExecMount } from '../graph/index.js';
import { writeLayer } from '../layers/index.js';
import { ExecError } from './errors.js';
import { LogSink } from './log-sink.js';
import { commitLayer, prepareOn } from './snapshot-step.js';
import type { OpContext, VertexResult } from './types.js';

/**
 * RUN: a fresh snapshot on the root input, the process in the sandbox, the
 * upper dir as the new layer. Mount-target stubs runc creates are removed by
 * the executor, so `--mount` leaves nothing in the layer.
 */
export async function runExec(def: ExecDef, inputs: readonly VertexResult[], ctx: OpContext): Promise<LayerRef[]> {
  const { deps, opts, vertex } = ctx;
  const rootLayers = def.hasRoot ? inputs[0]!.layers : [];
  await using stack = new AsyncStack();
  const step = await prepareOn(ctx, rootLayers, stack, 'exec');

  const merged = await tmpMountDir(ctx, stack);
  await mountAt(step.mounts[0]!, merged);
  const unmountRoot = async () => unmountAt(merged);
  stack.defer(unmountRoot);

  const extra: Mount[] = [];
  const secretEnv: Record<string, string> = {};
  for (const m of def.mounts) {
    const mount = await this_mount(m, inputs, ctx, stack, secretEnv);
    if (mount) extra.push(mount);
  }

  const logs = new LogSink(vertex.digest, opts.emit, [...opts.secrets.values()]);
  const user = def.user.group !== undefined ? `${def.user.user}:${def.user.group}` : def.user.user;
  const result = await deps.executor.run(
    { args: def.args, env: def.env, cwd: def.cwd, user },
    {
      rootfs: [{ type: 'bind', source: merged, options: ['rbind', 'rw'] }],
      mounts: extra,
      network: def.network === 'default' ? 'none' : def.network,
      ...(deps.limits ? { limits: deps.limits } : {}),
      secretEnv,
      onStdout: (c) => logs.write('stdout', c),
      onStderr: (c) => logs.write('stderr', c),
      signal: opts.signal,
    },
  );
  logs.end();
  if (result.exitCode !== 0 || result.signal || result.timedOut) {
    throw new ExecError(vertex.digest, def.args.join(' '), result);
  }
  await unmountRoot();

  const layer = await writeLayer(step.mounts, deps.store, {
    ...(opts.sourceDateEpoch !== undefined ? { sourceDateEpoch: opts.sourceDateEpoch } : {}),
    signal: opts.signal,
  });
  // await before the stack unwinds: it removes the snapshot unless the commit is done.
  return await commitLayer(ctx, step, rootLayers, layer);
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
      const src = await inputDir(ctx, m.input, inputs, stack);
      const host = await resolveInRoot(src, m.source);
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

/** A readable directory with an input's filesystem: the context, or a mounted read-only view of a stage. */
export async function inputDir(ctx: OpContext, index: number, inputs: readonly VertexResult[], stack: AsyncStack): Promise<string> {
  const inputVertex = ctx.graph.get(ctx.vertex.inputs[index]!);
  if (inputVertex.def.kind === 'local') {
    if (!ctx.opts.contextDir) throw new CodedError('INVALID_ARGUMENT', 'this step reads the build context, but none was given');
    return ctx.opts.contextDir;
  }
  const result = inputs[index]!;
  if (result.file) return path.dirname(result.file.path);
  const name = await ctx.materializer.ensure(result.layers, ctx.opts.signal);
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
