import http from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
/**
 * Prometheus metrics of a worker or API process. Build events are observed as
 * they pass (step durations, cache hits, pushed bytes); queue depth is read on
 * scrape through `setQueueDepthSource`. Labels never carry ids, refs or
 * anything a client chose, so cardinality stays fixed.
 */
export class ServiceMetrics {
    registry = new Registry();
    builds = new Counter({ name: 'buildlite_builds_total', help: 'Builds that ended, by final state', labelNames: ['state'], registers: [this.registry] });
    running = new Gauge({ name: 'buildlite_builds_running', help: 'Builds running in this process', registers: [this.registry] });
    stepSeconds = new Histogram({
        name: 'buildlite_step_duration_seconds',
        help: 'Duration of build steps that ran (cache misses)',
        buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
        registers: [this.registry],
    });
    steps = new Counter({ name: 'buildlite_steps_total', help: 'Build steps by outcome (cached or run)', labelNames: ['outcome'], registers: [this.registry] });
    pushedBytes = new Counter({ name: 'buildlite_pushed_bytes_total', help: 'Bytes pushed to registries', registers: [this.registry] });
    queueDepth = new Gauge({
        name: 'buildlite_queue_depth',
        help: 'Jobs in the build queues, by BullMQ state',
        labelNames: ['state'],
        registers: [this.registry],
        collect: async () => {
            if (!this.depthSource)
                return;
            try {
                for (const [state, n] of Object.entries(await this.depthSource()))
                    this.queueDepth.set({ state }, n);
            }
            catch {
                // Redis away: keep the last values rather than failing the whole scrape.
            }
        },
    });
    /** The ratio itself, so a dashboard needs no PromQL to show it. */
    hitRatio = new Gauge({
        name: 'buildlite_cache_hit_ratio',
        help: 'Cached steps / all steps since start',
        registers: [this.registry],
        collect: async () => {
            const v = (await this.steps.get()).values;
            const cached = v.find((x) => x.labels.outcome === 'cached')?.value ?? 0;
            const total = v.reduce((a, x) => a + x.value, 0);
            this.hitRatio.set(total ? cached / total : 0);
        },
    });
    depthSource;
    constructor() {
        collectDefaultMetrics({ register: this.registry, prefix: 'buildlite_' });
    }
    setQueueDepthSource(fn) {
        this.depthSource = fn;
    }
    /** Per build: returns an observer for its events. */
    observer() {
        const started = new Map();
        const pushed = new Map();
        return (ev) => {
            if (ev.type === 'vertex') {
                if (ev.state === 'started')
                    started.set(ev.vertex, ev.at);
                else if (ev.state === 'cached')
                    this.steps.inc({ outcome: 'cached' });
                else if (ev.state === 'completed') {
                    this.steps.inc({ outcome: 'run' });
                    const t0 = started.get(ev.vertex);
                    if (t0 !== undefined)
                        this.stepSeconds.observe(Math.max(0, ev.at - t0) / 1000);
                }
            }
            else if (ev.type === 'progress' && ev.action === 'push') {
                const before = pushed.get(ev.id) ?? 0;
                if (ev.current > before) {
                    this.pushedBytes.inc(ev.current - before);
                    pushed.set(ev.id, ev.current);
                }
            }
        };
    }
    /** Serves `/metrics` on host:port; resolves with the server once listening. */
    async serve(addr) {
        const { host, port } = splitHostPort(addr);
        const server = http.createServer((req, res) => {
            if (req.url !== '/metrics') {
                res.writeHead(404).end();
                return;
            }
            this.registry.metrics().then((text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text), (err) => res.writeHead(500).end(String(err)));
        });
        await new Promise((resolve, reject) => {
            server.once('error', reject);
            server.listen(port, host, () => resolve());
        });
        return server;
    }
}
export function splitHostPort(addr) {
    const i = addr.lastIndexOf(':');
    const host = i > 0 ? addr.slice(0, i).replace(/^\[|\]$/g, '') : '127.0.0.1';
    const port = Number(i >= 0 ? addr.slice(i + 1) : addr);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
        throw new Error(`bad address "${addr}": want HOST:PORT`);
    return { host, port };
}
//# sourceMappingURL=metrics.js.map