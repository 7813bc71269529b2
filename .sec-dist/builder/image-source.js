import { parseDigest } from '../core/digest.js';
import { readJson } from '../cache/index.js';
import { formatReference, parseReference } from '../registry-client/index.js';
/** Max size of an image config we accept (BuildKit and containerd use a few MiB too). */
const MAX_CONFIG_BYTES = 8 << 20;
/**
 * FROM through the registry client: resolving pins a tag to a manifest digest
 * (so a re-tag invalidates everything after FROM), pulling fetches blobs into
 * the store. Resolutions are memoised per build so a tag is read once.
 */
export class RegistryImages {
    client;
    resolved = new Map();
    constructor(client) {
        this.client = client;
    }
    resolve(ref, platform, signal) {
        const k = `${ref}|${platform.os}/${platform.architecture}`;
        let p = this.resolved.get(k);
        if (!p) {
            p = this.doResolve(ref, platform, signal);
            this.resolved.set(k, p);
        }
        return p;
    }
    async doResolve(ref, platform, signal) {
        const parsed = parseReference(ref);
        const r = await this.client.resolve(parsed, platform, signal);
        const pinned = formatReference({ ...parsed, tag: undefined, digest: r.manifestDigest });
        return {
            ref: pinned,
            config: r.config.config ?? {},
            history: r.config.history ?? [],
            platform: { os: r.config.os, architecture: r.config.architecture, ...(r.config.variant ? { variant: r.config.variant } : {}) },
        };
    }
    async pull(ref, platform, store, opts) {
        const pulled = await this.client.pullImage(parseReference(ref), store, { platform, ...opts });
        const config = await readJson(store, pulled.configDigest, MAX_CONFIG_BYTES);
        const diffIds = config.rootfs.diff_ids;
        if (diffIds.length !== pulled.manifest.layers.length) {
            throw new Error(`image ${ref}: ${pulled.manifest.layers.length} layers but ${diffIds.length} diff_ids in its config`);
        }
        const layers = pulled.manifest.layers.map((l, i) => ({
            mediaType: l.mediaType,
            digest: l.digest,
            size: l.size,
            diffId: parseDigest(diffIds[i]),
        }));
        return { config, layers };
    }
}
/**
 * For planning without a network (`buildlite graph`): refs stay as written and
 * base images contribute no config, so ONBUILD triggers of a base are not shown.
 */
export const offlineResolver = {
    async resolve(ref, platform) {
        return { ref, config: {}, history: [], platform };
    },
};
//# sourceMappingURL=image-source.js.map