export { writeLayer, type LayerDescriptor, type WriteLayerOptions } from './compress.js';
export { applyLayer, extractTar, type ApplyLimits, type ApplyOptions, type ExtractTarOptions } from './apply.js';
export { chainId } from './chain-id.js';
export { diffTar, upperDirOf, OPAQUE_MARKER, WHITEOUT_PREFIX, type DiffOptions } from './diff.js';
export { compressionOfMediaType, decompress, sniffCompression, type Compression } from './decompress.js';
export { headerChecksumOk } from './tar-format.js';
export { readTar, type TarEntry } from './tar-reader.js';
export type { ExtractLimits } from './extract.js';
export * from './errors.js';
