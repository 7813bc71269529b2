export { LayerChangedError } from './tar-writer.js';
export { LayerSourceError } from './diff.js';
export { UnsupportedMediaTypeError } from './decompress.js';
export { XattrError } from './xattrs.js';
export { TarFormatError } from './tar-format.js';
//# sourceMappingURL=errors.js.map