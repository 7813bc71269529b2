import path from 'node:path';
import { UnrecoverableError, WaitingError } from 'bullmq';
import { CodedError, toWire } from '../core/errors.js';
import { unpackContext } from './context.js';
import { EventWriter } from './events.js';
import { parseBuildRecord } from './jobs.js';
/**
 * Runs one build job: marks it running, unpacks its context, streams the
 * builder's events to Redis, and ends it exactly once. Failures that a retry
 * can fix (registry down, a Redis blip) are rethrown for BullMQ's backoff;
 * Dockerfile and RUN failures end the build and become UnrecoverableError; a
 * worker that lost the job publishes nothing more.
 */
export async function processBuild(deps, job, token, bullSignal, running) {
    const { buildId } = job.data;
    const { redis, keys, log } = deps;
    const owner = token ? { queue: job.queueName, token } : undefined;
    const writer = new EventWriter(redis, keys, buildId, deps.events);
    const controller = new AbortController();
    const handle = {
        controller,
        stop(reason) {
            if (handle.reason)
                return;
            handle.reason = reason;
            controller.abort(new CodedError('CANCELLED', reason === 'cancel' ? 'the build was cancelled' : `the worker stopped the build (${reason === 'lock' ? 'it lost the job' : 'draining'})`));
        },
    };
    const onBull = () => handle.stop('lock');
    bullSignal?.addEventListener('abort', onBull, { once: true });
    running.set(buildId, handle);
    const blog = log.child({ buildId, client: job.data.client, attempt: job.attemptsMade + 1 });
    try {
        const rec = parseBuildRecord(await redis.hgetall(keys.build(buildId)));
        if (!rec)
            throw new UnrecoverableError(`build ${buildId} has no record (expired or deleted)`);
        if (rec.state === 'succeeded' || rec.state === 'failed' || rec.state === 'cancelled')
            return undefined;
        await writer.begin();
        if (rec.cancelRequested) {
            await writer.finish({ state: 'cancelled', body: errorBody(new CodedError('CANCELLED', 'the build was cancelled')), ...(owner ? { owner } : {}) });
            return undefined;
        }
        await redis
            .multi()
            .hset(keys.build(buildId), { state: 'running', worker: deps.workerId, startedAt: String(Date.now()) })
            .hincrby(keys.build(buildId), 'attempts', 1)
            .exec();
        if (rec.attempts > 0)
            await writer.append({ type: 'warning', message: `build restarted (attempt ${rec.attempts + 1}) on worker ${deps.workerId}` });
        let secrets = new Map();
        if (job.data.secretsHolder) {
            const held = deps.vault?.holderId === job.data.secretsHolder ? deps.vault.get(buildId) : undefined;
            if (!held) {
                const err = new CodedError('INVALID_ARGUMENT', 'the secrets of this build were held in memory by the API process that accepted it, which is gone: submit it again');
                await writer.finish({ state: 'failed', body: errorBody(err), extra: { error: JSON.stringify(err.toWire()) }, ...(owner ? { owner } : {}) });
                throw new UnrecoverableError(err.message);
            }
            secrets = held;
        }
        blog.info({ project: job.data.project }, 'build started');
        deps.metrics?.running.inc();
        const observe = deps.metrics?.observer();
        let terminal;
        const ctx = await unpackContext(deps.contextsDir, job.data.request.context.digest, path.join(deps.root, 'tmp'), controller.signal).catch((err) => {
            terminal = { seq: 0, type: 'error', error: toWire(err) };
            return undefined;
        });
        try {
            if (ctx) {
                const events = deps.builder.build({ ...job.data.request, context: { dir: ctx.dir } }, { secrets, signal: controller.signal });
                for await (const ev of events) {
                    observe?.(ev);
                    if (ev.type === 'result' || ev.type === 'error')
                        terminal = ev;
                    else if (!handle.reason || handle.reason === 'cancel')
                        await writer.append(ev);
                }
            }
        }
        finally {
            deps.metrics?.running.dec();
            await ctx?.remove();
        }
        return await conclude(deps, job, token, writer, handle, terminal, blog);
    }
    finally {
        bullSignal?.removeEventListener('abort', onBull);
        running.delete(buildId);
    }
}
async function conclude(deps, job, token, writer, handle, terminal, blog) {
    const { buildId, project } = job.data;
    const owner = token ? { queue: job.queueName, token } : undefined;
    const done = (state) => {
        deps.metrics?.builds.inc({ state });
        if (state !== 'failed' || !isRetry(job))
            deps.vault?.drop(buildId);
    };
    if (handle.reason === 'lock') {
        blog.warn('lost the job lock: stopped the build without publishing a result');
        throw new Error('job lock lost');
    }
    if (handle.reason === 'drain' && terminal?.type !== 'result') {
        // Hand the job back untouched: another worker (or this one, restarted) runs it.
        blog.info('draining: handing the build back to the queue');
        if (token)
            await job.moveToWait(token);
        throw new WaitingError();
    }
    if (terminal?.type === 'result') {
        const ok = await writer.finish({ state: 'succeeded', body: { type: 'result', result: terminal.result }, extra: { imageDigest: terminal.result.imageDigest }, ...(owner ? { owner } : {}) });
        if (!ok) {
            blog.warn('build finished but the job was no longer ours: result not published');
            throw new Error('job lock lost');
        }
        await deps.redis.set(deps.keys.project(project), deps.workerId, 'EX', deps.projectTtlS).catch(() => undefined);
        done('succeeded');
        blog.info({ imageDigest: terminal.result.imageDigest }, 'build succeeded');
        return terminal.result;
    }
    const error = terminal?.type === 'error' ? terminal.error : { code: 'INTERNAL', message: 'the builder ended without a result', retryable: false };
    if (handle.reason === 'cancel' || error.code === 'CANCELLED') {
        const cancelled = { ...error, code: 'CANCELLED', message: 'the build was cancelled', retryable: false };
        await writer.finish({ state: 'cancelled', body: { type: 'error', error: cancelled }, extra: { error: JSON.stringify(cancelled) }, ...(owner ? { owner } : {}) });
        done('cancelled');
        blog.info('build cancelled');
        throw new UnrecoverableError('cancelled');
    }
    const attemptsLeft = (job.opts.attempts ?? 1) - (job.attemptsMade + 1);
    if (error.retryable && attemptsLeft > 0) {
        // Infrastructure, not the Dockerfile: BullMQ retries with backoff; the stream says so.
        await writer.append({ type: 'warning', message: `attempt ${job.attemptsMade + 1} failed (${error.message}); retrying` });
        await deps.redis.hset(deps.keys.build(buildId), 'state', 'queued');
        blog.warn({ code: error.code }, 'build failed with a retryable error; retrying');
        throw new Error(error.message);
    }
    const ok = await writer.finish({ state: 'failed', body: { type: 'error', error }, extra: { error: JSON.stringify(error) }, ...(owner ? { owner } : {}) });
    if (ok)
        done('failed');
    blog.info({ code: error.code }, 'build failed');
    throw new UnrecoverableError(error.message);
}
function isRetry(job) {
    return (job.opts.attempts ?? 1) > job.attemptsMade + 1;
}
function errorBody(err) {
    return { type: 'error', error: err.toWire() };
}
//# sourceMappingURL=processor.js.map