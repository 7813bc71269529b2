export { buildImageConfig } from './config.js';
export { storeImage } from './manifest.js';
export { exportToRegistry } from './export-registry.js';
export { exportOciLayoutTar } from './export-layout.js';
export { exportLocalDir } from './export-local.js';
export { exportRootfsTar } from './export-tar.js';
export { TagStore } from './tags.js';
//# sourceMappingURL=index.js.map