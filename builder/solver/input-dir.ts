import path from 'node:path';
import type { AsyncStack } from '../../core/dispose.js';
import { CodedError } from '../../core/errors.js';
import { mountAt, unmountAt } from '../../core/mounter.js';
import { tmpMountDir } from './snapshot-step.js';
import { localDir, type OpContext, type VertexResult } from './types.js';

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
