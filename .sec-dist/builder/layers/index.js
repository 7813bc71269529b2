export { writeLayer } from './compress.js';
export { applyLayer, extractTar } from './apply.js';
export { chainId } from './chain-id.js';
export { diffTar, upperDirOf, OPAQUE_MARKER, WHITEOUT_PREFIX } from './diff.js';
export { compressionOfMediaType, sniffCompression } from './decompress.js';
export { readTar } from './tar-reader.js';
export * from './errors.js';
//# sourceMappingURL=index.js.map