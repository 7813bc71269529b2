/**
 * Where a build for given platforms goes. Workers advertise the platforms
 * they build (their own natively, others under QEMU); when every live worker
 * offers what a build asks for, the shared queue serves it as any build;
 * otherwise it goes to the own queue of a worker that offers all of it,
 * preferring one that runs more of it natively, then one with a free slot,
 * then the one that built the project last. No live worker offering it is a
 * refusal at submit, naming what the workers offer.
 */
import { CodedError } from '../core/errors.js';
import type { WorkerRecord } from '../worker/records.js';

export type PlatformRoute = { readonly kind: 'any' } | { readonly kind: 'worker'; readonly id: string };

function offered(w: WorkerRecord): readonly string[] {
  return w.platforms ?? (w.platform ? [w.platform] : []);
}

export function routeByPlatform(live: readonly WorkerRecord[], wanted: readonly string[], projectWorker?: string): PlatformRoute {
  if (wanted.length === 0 || live.length === 0) return { kind: 'any' };
  const able = live.filter((w) => wanted.every((p) => offered(w).includes(p)));
  if (able.length === live.length) return { kind: 'any' };
  if (able.length === 0) {
    const all = [...new Set(live.flatMap(offered))].sort();
    throw new CodedError('INVALID_ARGUMENT', `no live worker builds ${wanted.join(' and ')}: the workers offer ${all.join(', ') || 'nothing'}`);
  }
  const native = (w: WorkerRecord) => wanted.filter((p) => p === w.platform).length;
  const free = (w: WorkerRecord) => (w.active < w.concurrency ? 1 : 0);
  const best = [...able].sort((a, b) => native(b) - native(a) || free(b) - free(a) || Number(b.id === projectWorker) - Number(a.id === projectWorker) || a.active - b.active)[0]!;
  return { kind: 'worker', id: best.id };
}
