export { BuildWorker, WORKER_DEFAULTS } from './worker.js';
export { ServiceMetrics, splitHostPort } from './metrics.js';
export { EmbeddedQueue } from './embedded-queue.js';
export { sweepWorkerState } from './sweep.js';
export { listWorkers } from './registry.js';
export * from './jobs.js';
export { waitForRedis, redactUrl } from './redis-wait.js';
//# sourceMappingURL=index.js.map