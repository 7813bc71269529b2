import http from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BuildEvent } from '../core/build.js';
import { LIMITED_REASONS } from '../core/limits.js';
import { BUILD_STATES, TERMINAL_STATES, type BuildState } from './build-states.js';

/** When a build was submitted and when it first started (epoch ms), for the build histograms. */
export interface BuildTiming {
  readonly queuedAt: number;
  readonly startedAt: number;
}

/** Read from Redis on each scrape of an API process: the whole service's view, not one process's. */
export interface ServiceSources {
  readonly queueDepth: () => Promise<Record<string, number>>;
  readonly workersAlive: () => Promise<number>;
  readonly buildTotals: () => Promise<Record<string, number>>;
  /** Builds refused or ended by each limit, and those that waited for their client's quota. */
  readonly limitTotals: () => Promise<{ limited: Record<string, number>; quotaWaits: number }>;
  /** Every reason an auth failure can have: each series exists (at 0) before the first failure. */
  readonly authFailureReasons: readonly string[];
}

const OUTCOMES = BUILD_STATES.filter((s) => TERMINAL_STATES.has(s));

/**
 * Prometheus metrics of a worker or API process. A worker observes its builds
 * as they pass (step durations, cache hits, pushed bytes) and as they end
 * (duration, queue wait, retries, take-overs). An API process reads the
 * service-wide numbers from Redis on scrape (`serveService`): queue depth,
 * live workers, and builds_total, which Redis counts as each build ends —
 * correct however many API and worker processes there are, because exactly
 * one Lua script ends a build and it counts it. In a worker-only process
 * builds_total counts the builds that worker ended. Labels never carry ids,
 * refs or anything a client chose, so cardinality stays fixed.
 */
export class ServiceMetrics {
  readonly registry = new Registry();
  private sources: ServiceSources | undefined;
  readonly builds = new Counter({
    name: 'buildlite_builds_total',
    help: 'Builds that ended, by final state: of the whole service in an API process (from Redis), of this worker in a worker process',
    labelNames: ['state'] as const,
    registers: [this.registry],
    collect: onScrape(
      () => this.sources?.buildTotals(),
      (totals) => {
        this.builds.reset();
        for (const state of OUTCOMES) this.builds.inc({ state }, totals[state] ?? 0);
      },
    ),
  });
  readonly buildSeconds = new Histogram({
    name: 'buildlite_build_duration_seconds',
    help: 'From the first start of a build to its end (all attempts), by outcome',
    labelNames: ['outcome'] as const,
    buckets: [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
    registers: [this.registry],
  });
  readonly queueWaitSeconds = new Histogram({
    name: 'buildlite_build_queue_wait_seconds',
    help: 'From submit to the first start of a build, by the outcome of the build',
    labelNames: ['outcome'] as const,
    buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
    registers: [this.registry],
  });
  readonly retried = new Counter({
    name: 'buildlite_builds_retried_total',
    help: 'Build attempts that failed for an infrastructure reason and were queued again, by error code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly moved = new Counter({
    name: 'buildlite_builds_moved_total',
    help: 'Builds this worker took over from a lost worker (its lock expired while the build ran)',
    registers: [this.registry],
  });
  readonly limited = new Counter({
    name: 'buildlite_builds_limited_total',
    help: 'Builds refused at submit or ended by a limit (a limit name) or a client quota (concurrency, rate): of the whole service in an API process (from Redis), of this worker in a worker process',
    labelNames: ['limit'] as const,
    registers: [this.registry],
    collect: onScrape(
      () => this.sources?.limitTotals(),
      (t) => {
        this.limited.reset();
        for (const limit of LIMITED_REASONS) this.limited.inc({ limit }, t.limited[limit] ?? 0);
      },
    ),
  });
  readonly quotaWaits = new Counter({
    name: 'buildlite_builds_quota_waits_total',
    help: 'Builds that waited for their client to be under its concurrency quota (policy queue), each counted once: of the whole service in an API process (from Redis), of this worker in a worker process',
    registers: [this.registry],
    collect: onScrape(
      () => this.sources?.limitTotals(),
      (t) => {
        this.quotaWaits.reset();
        this.quotaWaits.inc(t.quotaWaits);
      },
    ),
  });
  readonly authFailures = new Counter({
    name: 'buildlite_auth_failures_total',
    help: 'API calls refused for their token: missing, malformed, unknown, or denied (valid but not allowed)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  private readonly workersAlive = new Gauge({
    name: 'buildlite_workers_alive',
    help: 'Workers whose heartbeat is alive in Redis (read on scrape)',
    registers: [this.registry],
    collect: onScrape(
      () => this.sources?.workersAlive(),
      (n) => this.workersAlive.set(n),
    ),
  });
  readonly running = new Gauge({ name: 'buildlite_builds_running', help: 'Builds running in this process', registers: [this.registry] });
  readonly stepSeconds = new Histogram({
    name: 'buildlite_step_duration_seconds',
    help: 'Duration of build steps that ran (cache misses)',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly steps = new Counter({ name: 'buildlite_steps_total', help: 'Build steps by outcome (cached or run)', labelNames: ['outcome'] as const, registers: [this.registry] });
  readonly pushedBytes = new Counter({ name: 'buildlite_pushed_bytes_total', help: 'Bytes pushed to registries', registers: [this.registry] });
  private readonly queueDepth = new Gauge({
    name: 'buildlite_queue_depth',
    help: 'Jobs in the build queues, by BullMQ state',
    labelNames: ['state'] as const,
    registers: [this.registry],
    collect: onScrape(
      () => this.depthSource?.(),
      (depth) => {
        for (const [state, n] of Object.entries(depth)) this.queueDepth.set({ state }, n);
      },
    ),
  });
  /** The ratio itself, so a dashboard needs no PromQL to show it. */
  private readonly hitRatio = new Gauge({
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
  private depthSource: (() => Promise<Record<string, number>>) | undefined;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'buildlite_' });
    // Every outcome's series exists from the start: a rate over the first build is not lost.
    for (const limit of LIMITED_REASONS) this.limited.inc({ limit }, 0);
    for (const outcome of OUTCOMES) {
      this.builds.inc({ state: outcome }, 0);
      this.buildSeconds.zero({ outcome });
      this.queueWaitSeconds.zero({ outcome });
    }
  }

  setQueueDepthSource(fn: () => Promise<Record<string, number>>): void {
    this.depthSource = fn;
  }

  /** An API process: the service-wide numbers come from Redis on scrape (see the class comment). */
  serveService(sources: ServiceSources): void {
    this.sources = sources;
    this.depthSource = sources.queueDepth;
    for (const reason of sources.authFailureReasons) this.authFailures.inc({ reason }, 0);
  }

  authFailure(reason: string): void {
    this.authFailures.inc({ reason });
  }

  /** A build this process ended; the histograms only for a build that started. */
  buildEnded(state: Exclude<BuildState, 'queued' | 'running'>, timing: BuildTiming | undefined, endedAt = Date.now()): void {
    this.builds.inc({ state });
    if (!timing) return;
    this.buildSeconds.observe({ outcome: state }, Math.max(0, endedAt - timing.startedAt) / 1000);
    this.queueWaitSeconds.observe({ outcome: state }, Math.max(0, timing.startedAt - timing.queuedAt) / 1000);
  }

  /** Per build: returns an observer for its events. */
  observer(): (ev: BuildEvent) => void {
    const started = new Map<string, number>();
    const pushed = new Map<string, number>();
    return (ev) => {
      if (ev.type === 'vertex') {
        if (ev.state === 'started') started.set(ev.vertex, ev.at);
        else if (ev.state === 'cached') this.steps.inc({ outcome: 'cached' });
        else if (ev.state === 'completed') {
          this.steps.inc({ outcome: 'run' });
          const t0 = started.get(ev.vertex);
          if (t0 !== undefined) this.stepSeconds.observe(Math.max(0, ev.at - t0) / 1000);
        }
      } else if (ev.type === 'progress' && ev.action === 'push') {
        const before = pushed.get(ev.id) ?? 0;
        if (ev.current > before) {
          this.pushedBytes.inc(ev.current - before);
          pushed.set(ev.id, ev.current);
        }
      }
    };
  }

  /** Serves `/metrics` on host:port; resolves with the server once listening. */
  async serve(addr: string): Promise<http.Server> {
    const { host, port } = splitHostPort(addr);
    const server = http.createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return server;
  }
}

/**
 * A collect callback for numbers read on scrape (from Redis): nothing to do
 * without a source; a failed read keeps the last values rather than failing
 * the whole scrape.
 */
function onScrape<T>(read: () => Promise<T> | undefined, apply: (v: T) => void): () => Promise<void> {
  return async () => {
    let v: T | undefined;
    try {
      v = await read();
    } catch {
      return;
    }
    if (v !== undefined) apply(v);
  };
}

export function splitHostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  const host = i > 0 ? addr.slice(0, i).replace(/^\[|\]$/g, '') : '127.0.0.1';
  const port = Number(i >= 0 ? addr.slice(i + 1) : addr);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad address "${addr}": want HOST:PORT`);
  return { host, port };
}
