export { ApiServer, API_DEFAULTS, type ApiServerOptions } from './server.js';
export { BuildliteClient, CHUNK_BYTES, type SubmitRequest, type BuildInfo, type WorkerInfo } from './client.js';
export { TokenAuth, loadTokensFile, type Principal, type TokenGrant } from './auth.js';
export { toStatus, fromStatus, ERROR_METADATA_KEY } from './wire-errors.js';
export { REQUEST_LIMIT_DEFAULTS, type RequestLimits } from './validate.js';
export { SERVER_PLACEHOLDER } from '../worker/jobs.js';
