import { sha256 } from '../../core/digest.js';
import { BuildliteError, type ErrorCode } from '../../core/errors.js';
import type { ContainerConfig, HistoryEntry, Platform } from '../../core/oci.js';
import type { ImageResolver, ResolvedImage } from '../../builder/graph/index.js';

class ImageNotFound extends BuildliteError {
  readonly code: ErrorCode = 'NOT_FOUND';
}

/** The conformance suite's busybox base: what its `base-image.sh` pushes. */
export const BUSYBOX_CONFIG: ContainerConfig = {
  Env: ['PATH=/usr/local/bin:/usr/bin:/bin'],
  Cmd: ['sh'],
  Labels: { 'conf.base': 'busybox' },
};

/**
 * An in-memory ImageResolver: refs whose repository ends in one of the known
 * names resolve to a pinned ref; anything else is NOT_FOUND. Calls are recorded.
 */
export class FakeResolver implements ImageResolver {
  readonly calls: string[] = [];
  constructor(
    private readonly images: Record<string, { config: ContainerConfig; history?: HistoryEntry[] }> = {
      busybox: { config: BUSYBOX_CONFIG, history: [{ created_by: 'busybox base', comment: 'conformance base' }] },
    },
  ) {}

  async resolve(ref: string, platform: Platform): Promise<ResolvedImage> {
    this.calls.push(ref);
    const repo = ref.replace(/[@:][^/]*$/, '').split('/').pop() ?? '';
    const img = this.images[repo];
    if (!img) throw new ImageNotFound(`image ${ref}: not found`);
    const pinned = `${ref.replace(/@.*$/, '').replace(/:[^/:]*$/, '')}@${sha256(`${ref}|${JSON.stringify(img.config)}`)}`;
    return { ref: pinned, config: structuredClone(img.config), history: img.history ?? [], platform };
  }
}
