export { ApiServer, API_DEFAULTS } from './server.js';
export { BuildliteClient, CHUNK_BYTES } from './client.js';
export { TokenAuth, loadTokensFile } from './auth.js';
export { toStatus, fromStatus, ERROR_METADATA_KEY } from './wire-errors.js';
export { REQUEST_LIMIT_DEFAULTS } from './validate.js';
//# sourceMappingURL=index.js.map