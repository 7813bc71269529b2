import { randomUUID } from 'node:crypto';
import { snapshotName } from './materialize.js';
/** Prepare an active snapshot on top of `rootLayers`; the stack removes it unless it gets committed. */
export async function prepareOn(ctx, rootLayers, stack, kind) {
    const parent = await ctx.materializer.ensure(rootLayers, ctx.opts.signal);
    const key = `${kind}-${randomUUID()}`;
    const mounts = await ctx.deps.snapshotter.prepare(key, parent);
    const step = { key, mounts, committed: false };
    stack.defer(async () => {
        if (!step.committed)
            await ctx.deps.snapshotter.remove(key);
    });
    return step;
}
/**
 * Commit the step's snapshot under the chain id of its new layer chain. An
 * empty diff adds no layer (the parent snapshot already is this filesystem),
 * and a chain someone else committed first is simply reused.
 */
export async function commitLayer(ctx, step, rootLayers, layer) {
    if (!layer)
        return [...rootLayers];
    const layers = [
        ...rootLayers,
        { mediaType: layer.mediaType, digest: layer.digest, size: layer.size, diffId: layer.diffId },
    ];
    const name = snapshotName(layers);
    if (!(await ctx.deps.snapshotter.stat(name))) {
        try {
            await ctx.deps.snapshotter.commit(name, step.key);
            step.committed = true;
        }
        catch (err) {
            if (!(await ctx.deps.snapshotter.stat(name)))
                throw err;
        }
    }
    return layers;
}
//# sourceMappingURL=snapshot-step.js.map