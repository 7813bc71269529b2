import type { BuildEventBody, BuildRequest } from '../core/build.js';
import { formatBytes } from '../core/bytes.js';
import { CodedError } from '../core/errors.js';
import { limitExceeded } from '../core/limit-error.js';
import { checkLimits, clampLimits, type BuildLimits } from '../core/limits.js';
import type { LayerRef } from '../cache/index.js';
import { stepLimitsOf, type RuncExecutor } from './executor/index.js';
import type { Snapshotter } from './snapshot/index.js';
import { chainUnpacked } from './solver/index.js';

/**
 * The limits of one build: what it may use (the builder's ceiling cut by
 * what the request asks), its clock, and the checks that belong to the whole
 * build rather than to one step (the Dockerfile's size, the image's).
 */

/** The builder's limits cut by the request's; a limit the host cannot enforce for this build only is a warning event of the build. */
export function limitsOfBuild(req: BuildRequest, ceiling: BuildLimits, executor: RuncExecutor, emit: (e: BuildEventBody) => void): BuildLimits {
  try {
    checkLimits(req.limits, 'limits');
  } catch (err) {
    throw new CodedError('INVALID_ARGUMENT', `request ${(err as Error).message}`);
  }
  const limits = clampLimits(ceiling, req.limits);
  const atStart = new Set(executor.unenforced(stepLimitsOf(ceiling)));
  for (const w of executor.unenforced(stepLimitsOf(limits))) if (!atStart.has(w)) emit({ type: 'warning', message: w });
  return limits;
}

/**
 * Runs `build` under the whole-build clock: at the build timeout its signal
 * aborts, every step is killed and unwound (the solver waits for that before
 * it reports), and the build fails naming the limit. A cancel from `signal`
 * stays a cancel.
 */
export async function withBuildClock<T>(limits: BuildLimits, signal: AbortSignal | undefined, build: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const clock = new AbortController();
  const timer = setTimeout(() => clock.abort(), limits.buildTimeoutMs);
  try {
    return await build(signal ? AbortSignal.any([signal, clock.signal]) : clock.signal);
  } catch (err) {
    if (clock.signal.aborted && !signal?.aborted) throw limitExceeded('buildTimeoutMs', limits.buildTimeoutMs, 'the build', ' (its running steps were stopped)', { cause: err });
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** The Dockerfile against its limit, before it is parsed. */
export function checkDockerfileSize(req: BuildRequest, limits: BuildLimits): void {
  const bytes = Buffer.byteLength(req.dockerfile);
  if (bytes > limits.maxDockerfileBytes) throw limitExceeded('maxDockerfileBytes', limits.maxDockerfileBytes, `${req.dockerfileName ?? 'Dockerfile'} (${formatBytes(bytes)})`);
}

/**
 * The image as a whole against the image limits. Each step already checked
 * the layers it made; this catches an image made of cached steps (built
 * under larger limits) and a base image taken as it is. The unpacked total
 * is known when every layer's snapshot recorded its size.
 */
export async function checkImageSize(snapshotter: Snapshotter, layers: readonly LayerRef[], limits: BuildLimits): Promise<void> {
  const stored = layers.reduce((n, l) => n + l.size, 0);
  if (stored > limits.maxImageBytes) throw limitExceeded('maxImageBytes', limits.maxImageBytes, `the image (${formatBytes(stored)} compressed)`);
  const unpacked = await chainUnpacked(snapshotter, layers);
  if (unpacked !== undefined && unpacked > limits.maxImageUnpackedBytes) {
    throw limitExceeded('maxImageUnpackedBytes', limits.maxImageUnpackedBytes, `the image (${formatBytes(unpacked)} unpacked)`);
  }
}
