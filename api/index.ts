export { ApiServer, API_DEFAULTS, type ApiServerOptions, type ApiMetricsSink } from './server.js';
export { BuildliteClient, CHUNK_BYTES, CLIENT_DEFAULTS, type ClientOptions, type SubmitRequest, type BuildInfo, type WorkerInfo } from './client.js';
export { ConnectError, MessageSizeError } from './transport-errors.js';
export { loadServiceConfig, parseServiceConfig, withFlagLimits, EMPTY_SERVICE_CONFIG, type ServiceConfig } from './service-config.js';
export { TokenAuth, loadTokensFile, AUTH_FAILURE_REASONS, AuthError, type AuthFailureReason, type Principal, type TokenGrant } from './auth.js';
export { toStatus, fromStatus, ERROR_METADATA_KEY } from './wire-errors.js';
export { REQUEST_LIMIT_DEFAULTS, type RequestLimits } from './validate.js';
