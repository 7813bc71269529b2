var __addDisposableResource = (this && this.__addDisposableResource) || function (env, value, async) {
    if (value !== null && value !== void 0) {
        if (typeof value !== "object" && typeof value !== "function") throw new TypeError("Object expected.");
        var dispose, inner;
        if (async) {
            if (!Symbol.asyncDispose) throw new TypeError("Symbol.asyncDispose is not defined.");
            dispose = value[Symbol.asyncDispose];
        }
        if (dispose === void 0) {
            if (!Symbol.dispose) throw new TypeError("Symbol.dispose is not defined.");
            dispose = value[Symbol.dispose];
            if (async) inner = dispose;
        }
        if (typeof dispose !== "function") throw new TypeError("Object not disposable.");
        if (inner) dispose = function() { try { inner.call(this); } catch (e) { return Promise.reject(e); } };
        env.stack.push({ value: value, dispose: dispose, async: async });
    }
    else if (async) {
        env.stack.push({ async: true });
    }
    return value;
};
var __disposeResources = (this && this.__disposeResources) || (function (SuppressedError) {
    return function (env) {
        function fail(e) {
            env.error = env.hasError ? new SuppressedError(e, env.error, "An error was suppressed during disposal.") : e;
            env.hasError = true;
        }
        var r, s = 0;
        function next() {
            while (r = env.stack.pop()) {
                try {
                    if (!r.async && s === 1) return s = 0, env.stack.push(r), Promise.resolve().then(next);
                    if (r.dispose) {
                        var result = r.dispose.call(r.value);
                        if (r.async) return s |= 2, Promise.resolve(result).then(next, function(e) { fail(e); return next(); });
                    }
                    else s |= 1;
                }
                catch (e) {
                    fail(e);
                }
            }
            if (s === 1) return env.hasError ? Promise.reject(env.error) : Promise.resolve();
            if (env.hasError) throw env.error;
        }
        return next();
    };
})(typeof SuppressedError === "function" ? SuppressedError : function (error, suppressed, message) {
    var e = new Error(message);
    return e.name = "SuppressedError", e.error = error, e.suppressed = suppressed, e;
});
import { AsyncStack } from '../../core/dispose.js';
import { mountAt, unmountAt } from '../../core/mounter.js';
import { resolveChown } from '../executor/index.js';
import { writeLayer } from '../layers/index.js';
import { inputDir, tmpMountDir } from './exec-op.js';
import { applyFileActions } from './file-op.js';
import { commitLayer, prepareOn } from './snapshot-step.js';
/** COPY/ADD/WORKDIR: write through a mounted snapshot, then diff its upper dir into a layer. */
export async function runFile(def, inputs, ctx) {
    const env_1 = { stack: [], error: void 0, hasError: false };
    try {
        const { deps, opts } = ctx;
        const rootLayers = def.hasRoot ? inputs[0].layers : [];
        const stack = __addDisposableResource(env_1, new AsyncStack(), true);
        const step = await prepareOn(ctx, rootLayers, stack, 'file');
        const merged = await tmpMountDir(ctx, stack);
        await mountAt(step.mounts[0], merged);
        let mounted = true;
        stack.defer(async () => {
            if (mounted)
                await unmountAt(merged);
        });
        const sources = new Map();
        for (const a of def.actions) {
            if (a.op === 'copy' && !sources.has(a.src))
                sources.set(a.src, await inputDir(ctx, a.src, inputs, stack));
        }
        await applyFileActions(merged, def.actions, {
            sourceDir: (i) => sources.get(i),
            sourceExcludes: (i) => {
                const v = ctx.graph.get(ctx.vertex.inputs[i]);
                return v.def.kind === 'local' ? v.def.excludes : [];
            },
            sourceKind: (i) => (ctx.graph.get(ctx.vertex.inputs[i]).def.kind === 'local' ? 'context' : 'rootfs'),
            resolveChown: (spec) => resolveChown(merged, spec.group !== undefined ? `${spec.user}:${spec.group}` : spec.user),
            ...(opts.sourceDateEpoch !== undefined ? { sourceDateEpoch: opts.sourceDateEpoch } : {}),
        }, opts.signal);
        await unmountAt(merged);
        mounted = false;
        const layer = await writeLayer(step.mounts, deps.store, {
            ...(opts.sourceDateEpoch !== undefined ? { sourceDateEpoch: opts.sourceDateEpoch } : {}),
            signal: opts.signal,
        });
        // await before the stack unwinds: it removes the snapshot unless the commit is done.
        return await commitLayer(ctx, step, rootLayers, layer);
    }
    catch (e_1) {
        env_1.error = e_1;
        env_1.hasError = true;
    }
    finally {
        const result_1 = __disposeResources(env_1);
        if (result_1)
            await result_1;
    }
}
//# sourceMappingURL=file-step.js.map