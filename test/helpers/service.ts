/**
 * A real build service for tests: `buildlite serve` and `buildlite worker`
 * processes spawned from the bundled CLI (dist/bundle/main.js) against a real Redis, with a shared
 * contexts dir, a tokens file for three clients and an admin, and cleanup of
 * everything they leave (processes, runc containers, mounts, temp dirs).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { BuildEvent } from '../../core/build.js';
import type { BuildliteError } from '../../core/errors.js';
import type { BuildliteClient } from '../../api/index.js';
import { pushBusyboxBase } from './base-image.js';
import { spawnCli, type Proc } from './cli.js';
import { startRedis, type TestRedis } from './redis.js';
import { startRegistry, type TestRegistry } from './registry.js';
import { freePort } from './ports.js';
import { cleanupRoots } from './steps.js';

export { cleanupRoots, runcContainers } from './steps.js';
export type { Proc } from './cli.js';

export const TOKENS = {
  alice: 'alice-token-0123456789abcdef',
  bob: 'bob-token-0123456789abcdef00',
  carol: 'carol-token-0123456789abcdef',
  admin: 'admin-token-0123456789abcdef',
  hostnet: 'hostnet-token-0123456789abcd',
} as const;

export interface Service {
  readonly dir: string;
  readonly contexts: string;
  readonly redisUrl: string;
  readonly prefix: string;
  api: Proc;
  addr: string;
  /** HOST:PORT of the API process's /metrics, when started with `metrics: true` (each worker's is on its Proc). */
  readonly metricsAddr: string;
  readonly workers: Proc[];
  /** `args`: flags of this worker only (e.g. `--platforms linux/amd64`). */
  startWorker(id: string, root?: string, args?: readonly string[]): Promise<Proc>;
  stop(): Promise<void>;
}

/** Short locks: a killed worker's job moves to another worker in seconds, not the default 15+10 s. */
export const FAST_LOCKS = ['--lock-ms', '4000', '--stalled-ms', '2000', '--heartbeat-ms', '3000'];

export interface ServiceOptions {
  readonly redisUrl: string;
  readonly workers: number;
  readonly concurrency?: number;
  readonly embedded?: boolean;
  readonly prefix?: string;
  readonly metrics?: boolean;
  /** `--contexts` of every process (default: a directory they all share). */
  readonly contexts?: string;
  /** Extra flags for every worker process. */
  readonly workerArgs?: readonly string[];
  /** Extra flags for the serve process. */
  readonly apiArgs?: readonly string[];
  /** Extra entries of the tokens file (YAML flow mappings, e.g. `{ token: T, client: c, quota: { ... } }`). */
  readonly tokens?: readonly string[];
  /** A service config file's text, passed as `serve --config`. */
  readonly config?: string;
}

export async function startService(opts: ServiceOptions): Promise<Service> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bl-svc-'));
  const contexts = opts.contexts ?? path.join(dir, 'contexts');
  if (!opts.contexts) await mkdir(contexts, { recursive: true });
  const tokensFile = path.join(dir, 'tokens.yaml');
  await writeFile(
    tokensFile,
    [
      'tokens:',
      `  - { token: ${TOKENS.alice}, client: alice }`,
      `  - { token: ${TOKENS.bob}, client: bob }`,
      `  - { token: ${TOKENS.carol}, client: carol }`,
      `  - { token: ${TOKENS.admin}, client: ops, admin: true }`,
      `  - { token: ${TOKENS.hostnet}, client: net, entitlements: [network.host] }`,
      ...(opts.tokens ?? []).map((t) => `  - ${t}`),
      '',
    ].join('\n'),
  );
  const configArgs: string[] = [];
  if (opts.config !== undefined) {
    await writeFile(path.join(dir, 'config.yaml'), opts.config);
    configArgs.push('--config', path.join(dir, 'config.yaml'));
  }
  const prefix = opts.prefix ?? `t${process.pid}${Math.floor(Math.random() * 1e6)}`;
  const common = ['--redis', opts.redisUrl, '--contexts', contexts, '--prefix', prefix, '--drain-seconds', '5', ...FAST_LOCKS];
  const concurrency = String(opts.concurrency ?? 1);
  const apiRoot = path.join(dir, 'api');
  const metricsAddr = opts.metrics ? `127.0.0.1:${await freePort()}` : '';
  const api = spawnCli(['serve', ...(metricsAddr ? ['--metrics', metricsAddr] : []), '--listen', '127.0.0.1:0', '--tokens', tokensFile, '--root', apiRoot, '--concurrency', concurrency, ...(opts.embedded ? ['--embedded-worker', '--id', 'embedded'] : []), ...configArgs, ...(opts.apiArgs ?? []), ...common], apiRoot, metricsAddr);
  const workers: Proc[] = [];
  const svc: Service = {
    dir,
    contexts,
    redisUrl: opts.redisUrl,
    prefix,
    api,
    addr: '',
    metricsAddr,
    workers,
    async startWorker(id, root = path.join(dir, `worker-${id}`), args = []) {
      const wMetrics = opts.metrics ? `127.0.0.1:${await freePort()}` : '';
      const w = spawnCli(['worker', '--root', root, '--id', id, '--concurrency', concurrency, ...(wMetrics ? ['--metrics', wMetrics] : []), ...(opts.workerArgs ?? []), ...args, ...common], root, wMetrics);
      workers.push(w);
      await w.waitFor(/worker \S+ ready/);
      return w;
    },
    async stop() {
      await Promise.all([api, ...workers].map((p) => p.stop('SIGKILL')));
      await cleanupRoots([apiRoot, ...workers.map((w) => w.root)]);
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    const m = await api.waitFor(/listening on (\S+)/);
    svc.addr = m[1]!;
    for (let i = 0; i < opts.workers; i++) await svc.startWorker(`w${i + 1}`);
  } catch (err) {
    await svc.stop();
    throw err;
  }
  return svc;
}

/** What most service tests start from: Redis, a registry holding the busybox base, and a service on them. */
export interface ServiceWithBase {
  readonly redis: TestRedis;
  readonly registry: TestRegistry;
  readonly svc: Service;
  /** The base image's reference. */
  readonly base: string;
  stop(): Promise<void>;
}

export async function startServiceWithBase(opts: Omit<ServiceOptions, 'redisUrl'>): Promise<ServiceWithBase> {
  const [redis, registry] = await Promise.all([startRedis(), startRegistry()]);
  const stopAll = () => Promise.all([redis.stop(), registry.stop()]).then(() => undefined);
  try {
    await pushBusyboxBase(registry.host);
    const svc = await startService({ ...opts, redisUrl: redis.url });
    return { redis, registry, svc, base: `${registry.host}/library/busybox:latest`, stop: () => svc.stop().finally(stopAll) };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** All events after `from`; a dropped stream (a retryable error) is resumed from the last seq, as the CLI does. */
export async function collectResuming(c: BuildliteClient, buildId: string, from = 0): Promise<BuildEvent[]> {
  const out: BuildEvent[] = [];
  for (let attempt = 0; ; attempt++) {
    try {
      for await (const ev of c.watch(buildId, out.at(-1)?.seq ?? from)) out.push(ev);
      return out;
    } catch (err) {
      if (!(err as BuildliteError).retryable || attempt > 20) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** All events after `from`, from one Watch stream. */
export async function collectOnce(c: BuildliteClient, buildId: string, from = 0): Promise<BuildEvent[]> {
  const out: BuildEvent[] = [];
  for await (const ev of c.watch(buildId, from)) out.push(ev);
  return out;
}

/** Watches a build until an event matches; returns the seq of that event (to resume after it). */
export async function watchUntil(c: BuildliteClient, buildId: string, match: (ev: BuildEvent) => boolean): Promise<number> {
  let lastSeq = 0;
  for await (const ev of c.watch(buildId, 0)) {
    lastSeq = ev.seq;
    if (match(ev)) break;
  }
  return lastSeq;
}

/** The worker process running a build now, with its id. */
export async function workerOf(svc: Service, c: BuildliteClient, buildId: string): Promise<{ id: string; proc: Proc }> {
  const id = (await c.get(buildId)).worker;
  const proc = svc.workers.find((w) => w.root.endsWith(`worker-${id}`));
  if (!proc) throw new Error(`build ${buildId} runs on "${id}", which is not one of this service's workers`);
  return { id, proc };
}

/** A process's JSON log lines (pino writes one object a line), from character `from` of its output. */
export function logLines(output: string, from = 0): Array<Record<string, unknown>> {
  return output.slice(from).split('\n').flatMap((l) => {
    if (!l.startsWith('{')) return [];
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

/** Polls `check` until it holds (a log line or a scraped value that another process writes soon). */
export async function eventually(what: string, check: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Watches until a log line contains `text`; returns the last seq seen. */
export async function untilLog(c: BuildliteClient, buildId: string, text: string): Promise<number> {
  let last = 0;
  for await (const ev of c.watch(buildId, 0)) {
    last = ev.seq;
    if (ev.type === 'log' && ev.data.includes(text)) return last;
  }
  throw new Error(`build ${buildId} ended before printing ${text}`);
}
