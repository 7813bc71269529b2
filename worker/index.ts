export { BuildWorker, WORKER_DEFAULTS, type BuildWorkerOptions } from './worker.js';
export { ServiceMetrics, splitHostPort } from './metrics.js';
export { EmbeddedQueue, type EmbeddedJob } from './embedded-queue.js';
export { sweepWorkerState, type SweepReport } from './sweep.js';
export { listWorkers } from './presence.js';
export { SecretVault } from './secret-vault.js';
export { waitForRedis, redactUrl } from './redis-wait.js';
export { STEP_LOG_DEFAULTS } from './step-logs.js';
