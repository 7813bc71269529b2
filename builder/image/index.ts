export { buildImageConfig, type HistoryInput } from './config.js';
export { storeImage, type StoredImage } from './manifest.js';
export { imagesOf, storeIndex, topDescriptor, type BuiltImage, type PlatformImage } from './built-image.js';
export { exportToRegistry } from './export-registry.js';
export { loadBuilt } from './load-built.js';
export { exportOciLayoutTar } from './export-layout.js';
export { exportLocalDir } from './export-local.js';
export { exportRootfsTar, type RootfsTarOptions } from './export-tar.js';
export { TagStore } from './tags.js';
