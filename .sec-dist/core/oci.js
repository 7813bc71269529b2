/** Media types we read and write. OCI is what we write; Docker schema 2 we also read. */
export const MediaType = {
    OciManifest: 'application/vnd.oci.image.manifest.v1+json',
    OciIndex: 'application/vnd.oci.image.index.v1+json',
    OciConfig: 'application/vnd.oci.image.config.v1+json',
    OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
    OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
    OciLayer: 'application/vnd.oci.image.layer.v1.tar',
    DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
    DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
    DockerConfig: 'application/vnd.docker.container.image.v1+json',
    DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
    DockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
};
export const DEFAULT_PLATFORM = { os: 'linux', architecture: 'amd64' };
/** The PATH a container gets when its image sets none (Docker's and BuildKit's default). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export function isIndexMediaType(mt) {
    return mt === MediaType.OciIndex || mt === MediaType.DockerManifestList;
}
export function isManifestMediaType(mt) {
    return mt === MediaType.OciManifest || mt === MediaType.DockerManifest;
}
export function platformString(p) {
    return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}
//# sourceMappingURL=oci.js.map