import { MediaType } from '../../core/oci.js';
import { writeBlob } from '../../cache/index.js';
/** Serialise config and manifest (stable JSON, OCI media types) into the store. */
export async function storeImage(store, config, layers) {
    const configBytes = Buffer.from(JSON.stringify(config));
    const cfg = await writeBlob(store, configBytes);
    const configDesc = { mediaType: MediaType.OciConfig, digest: cfg.digest, size: cfg.size };
    const layerDescs = layers.map((l) => ({ mediaType: ociLayerType(l.mediaType), digest: l.digest, size: l.size }));
    const manifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: configDesc, layers: layerDescs };
    const m = await writeBlob(store, Buffer.from(JSON.stringify(manifest)));
    return { manifest: { mediaType: MediaType.OciManifest, digest: m.digest, size: m.size }, config: configDesc, layers: layerDescs };
}
/** Base layers pulled as Docker media types keep their bytes; only the label changes to OCI's equivalent. */
function ociLayerType(mt) {
    if (mt === MediaType.DockerLayerGzip)
        return MediaType.OciLayerGzip;
    return mt;
}
//# sourceMappingURL=manifest.js.map