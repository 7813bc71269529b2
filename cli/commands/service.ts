import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import { ApiServer, AUTH_FAILURE_REASONS, EMPTY_SERVICE_CONFIG, loadServiceConfig, loadTokensFile, withFlagLimits, type ServiceConfig, type TokenGrant } from '../../api/index.js';
import { LIMIT_SPECS, parseLimit, type LimitName } from '../../core/limits.js';
import { parseBytes } from '../../core/bytes.js';
import { parseDuration } from '../../core/duration.js';
import { isRegistryStoreSpec, RETENTION_DEFAULTS, type RetentionPolicy } from '../../store/index.js';
import { BuildWorker, SecretVault, ServiceMetrics, redactUrl, waitForRedis, type BuildWorkerOptions } from '../../worker/index.js';
import { checkContextUrl, checkHttpPolicy, type HttpPolicy } from '../../builder/index.js';
import { defaultRoot, httpTimeoutsFlag, parseFlags } from '../flags.js';
import { limitsFromFlags, withLimitFlags } from '../limit-flags.js';
import { UsageError } from '../usage.js';
import { parsePlatformList, targetPlatforms } from '../../core/platform.js';
import { codeId } from '../code-id.js';

export const COMMON = {
  redis: { type: 'string' },
  root: { type: 'string' },
  contexts: { type: 'string' },
  concurrency: { type: 'string' },
  metrics: { type: 'string' },
  prefix: { type: 'string' },
  'drain-seconds': { type: 'string' },
  'insecure-registry': { type: 'string', multiple: true },
  'allow-host-network': { type: 'boolean' },
  'allow-security-insecure': { type: 'boolean' },
  'allow-private-urls': { type: 'boolean' },
  'allow-url-network': { type: 'string', multiple: true },
  'http-timeouts': { type: 'string' },
  // Shorter locks make a dead worker's job move sooner (tests, small clusters); see WORKER_DEFAULTS.
  'lock-ms': { type: 'string' },
  'stalled-ms': { type: 'string' },
  'heartbeat-ms': { type: 'string' },
  'gc-keep-storage': { type: 'string' },
  'gc-keep-duration': { type: 'string' },
  'gc-interval': { type: 'string' },
  id: { type: 'string' },
  // The platforms this worker offers for routing (default: all it runs, natively or under QEMU).
  platforms: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const SERVE_FLAGS = {
  ...COMMON,
  listen: { type: 'string' },
  tokens: { type: 'string' },
  token: { type: 'string', multiple: true },
  // Limits and quotas of every build and client (api/service-config.ts); the two flags win over the file.
  config: { type: 'string' },
  'max-context-size': { type: 'string' },
  'max-dockerfile-size': { type: 'string' },
  'embedded-worker': { type: 'boolean' },
  // Retention of the store runs in the API: it owns the uploads and knows which builds wait.
  'store-keep-duration': { type: 'string' },
  'store-gc-interval': { type: 'string' },
} as const;

/** How long SIGTERM waits for running builds before handing them back (seconds). */
const DEFAULT_DRAIN_S = 30;

function logger(name: string): Logger {
  // JSON lines on stderr; stdout stays free for anything a wrapper wants to parse.
  return pino({ name, base: { pid: process.pid, host: os.hostname() } }, pino.destination(2));
}

function intFlag(cmd: string, name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} "${v}": want an integer >= ${min}`, cmd);
  return n;
}

function redisUrl(cmd: string, v: string | undefined): string {
  const url = v ?? process.env['BUILDLITE_REDIS_URL'];
  if (!url) throw new UsageError('--redis URL is required (or set BUILDLITE_REDIS_URL)', cmd);
  if (!/^rediss?:\/\//.test(url)) throw new UsageError(`--redis "${redactUrl(url)}": want redis://HOST:PORT`, cmd);
  return url;
}

/** `--contexts`: a registry store as given, a directory made absolute (default `<root>/contexts`). */
function contextsSpec(v: string | undefined, root: string): string {
  if (v !== undefined && isRegistryStoreSpec(v)) return v;
  return path.resolve(v ?? path.join(root, 'contexts'));
}

function parsed<T>(cmd: string, name: string, v: string | undefined, parse: (s: string) => T): T | undefined {
  if (v === undefined) return undefined;
  try {
    return parse(v);
  } catch (err) {
    throw new UsageError(`--${name} "${v}": ${err instanceof Error ? err.message : String(err)}`, cmd);
  }
}

/**
 * The operator's URL policy (docs/security.md T7): ADD <url>, git sources and
 * URL contexts stay off loopback, private and link-local addresses (the
 * service's own Redis, API, registry and the cloud metadata service among
 * them) unless allowed. A worker fetches under it; `serve` checks a URL
 * context under it before queueing, so the operator gives both the same flags.
 */
function urlPolicy(cmd: string, v: Pick<CommonValues, 'allow-private-urls' | 'allow-url-network'>): HttpPolicy {
  const policy = {
    allowPrivate: v['allow-private-urls'] ?? false,
    allowNetworks: v['allow-url-network'] ?? [],
    deniedHint: 'the build service operator allows it with buildlite worker --allow-url-network CIDR (or --allow-private-urls), given to buildlite serve too for URL contexts',
  };
  try {
    checkHttpPolicy(policy);
  } catch (err) {
    throw new UsageError(`--allow-url-network: ${err instanceof Error ? err.message : String(err)}`, cmd);
  }
  return policy;
}

type CommonValues = { [K in keyof typeof COMMON]?: (typeof COMMON)[K] extends { multiple: true } ? string[] : (typeof COMMON)[K]['type'] extends 'boolean' ? boolean : string };

function workerOptions(cmd: string, v: CommonValues, url: string, root: string, log: Logger, metrics: ServiceMetrics): BuildWorkerOptions {
  const concurrency = intFlag(cmd, 'concurrency', v.concurrency, 1);
  const lock = intFlag(cmd, 'lock-ms', v['lock-ms'], 1000);
  const stalled = intFlag(cmd, 'stalled-ms', v['stalled-ms'], 500);
  const hb = intFlag(cmd, 'heartbeat-ms', v['heartbeat-ms'], 1000);
  const keepStorage = parsed(cmd, 'gc-keep-storage', v['gc-keep-storage'], parseBytes);
  const keepDuration = parsed(cmd, 'gc-keep-duration', v['gc-keep-duration'], parseDuration);
  const gcInterval = parsed(cmd, 'gc-interval', v['gc-interval'], parseDuration);
  if ((keepDuration !== undefined || gcInterval !== undefined) && keepStorage === undefined) throw new UsageError('--gc-keep-duration and --gc-interval need --gc-keep-storage SIZE (the hard cap)', cmd);
  if (gcInterval !== undefined && gcInterval < 100) throw new UsageError(`--gc-interval "${v['gc-interval']}": at least 100ms`, cmd);
  const timeouts = httpTimeoutsFlag(cmd, v['http-timeouts']);
  let platforms;
  try {
    platforms = v.platforms === undefined ? undefined : targetPlatforms(parsePlatformList(v.platforms));
  } catch (err) {
    throw new UsageError(`--platforms: ${err instanceof Error ? err.message : String(err)}`, cmd);
  }
  // The worker's own limits: the ceiling of every build it takes, whatever the build asks.
  const limits = limitsFromFlags(cmd, v);
  const httpPolicy = urlPolicy(cmd, v);
  return {
    redisUrl: url,
    root,
    contexts: contextsSpec(v.contexts, root),
    ...(keepStorage !== undefined ? { gc: { keepStorageBytes: Math.floor(keepStorage), ...(keepDuration !== undefined ? { keepDurationMs: keepDuration } : {}), ...(gcInterval !== undefined ? { intervalMs: gcInterval } : {}) } } : {}),
    logger: log,
    metrics,
    ...(v.id ? { id: v.id } : {}),
    ...(v.prefix ? { prefix: v.prefix } : {}),
    ...(concurrency ? { concurrency } : {}),
    ...(lock ? { lockDurationMs: lock } : {}),
    ...(stalled ? { stalledIntervalMs: stalled } : {}),
    ...(hb ? { heartbeatTtlMs: hb } : {}),
    ...(platforms ? { platforms } : {}),
    builder: {
      insecureRegistries: v['insecure-registry'] ?? [],
      allowHostNetwork: v['allow-host-network'] ?? false,
      allowSecurityInsecure: v['allow-security-insecure'] ?? false,
      httpPolicy,
      ...(timeouts ? { timeouts } : {}),
      limits,
      codeId: codeId(),
    },
  };
}

/** `--store-keep-duration` / `--store-gc-interval` → the API's store retention. */
function retentionPolicy(keep: string | undefined, interval: string | undefined): RetentionPolicy {
  const keepMs = parsed('serve', 'store-keep-duration', keep, parseDuration) ?? RETENTION_DEFAULTS.keepDurationMs;
  const intervalMs = parsed('serve', 'store-gc-interval', interval, parseDuration) ?? RETENTION_DEFAULTS.intervalMs;
  if (keepMs < RETENTION_DEFAULTS.minKeepDurationMs) throw new UsageError(`--store-keep-duration "${keep}": at least 10m (an upload must outlive the moment its build is recorded)`, 'serve');
  if (intervalMs < 1000) throw new UsageError(`--store-gc-interval "${interval}": at least 1s`, 'serve');
  return { keepDurationMs: keepMs, intervalMs };
}

/** `--config FILE`, then the limit flags over it (flag > file > built-in default). */
async function serviceConfig(file: string | undefined, flags: Partial<Record<LimitName, string | undefined>>): Promise<ServiceConfig> {
  const fromFile = file !== undefined ? await loadServiceConfig(path.resolve(file)) : EMPTY_SERVICE_CONFIG;
  const limits: Partial<Record<LimitName, number>> = {};
  for (const [name, text] of Object.entries(flags) as Array<[LimitName, string | undefined]>) {
    const v = parsed('serve', LIMIT_SPECS[name].key, text, (t) => parseLimit(name, t));
    if (v !== undefined) limits[name] = v;
  }
  return withFlagLimits(fromFile, limits);
}

/** SIGTERM/SIGINT → `drain` once; a second signal exits at once. */
function onShutdown(log: Logger, drain: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let draining = false;
    const handler = (sig: NodeJS.Signals) => {
      if (draining) {
        log.warn({ signal: sig }, 'second signal: exiting now');
        process.exit(130);
      }
      draining = true;
      log.info({ signal: sig }, 'draining');
      drain().then(resolve, (err: unknown) => {
        log.error({ err: String(err) }, 'drain failed');
        resolve();
      });
    };
    process.on('SIGTERM', handler);
    process.on('SIGINT', handler);
  });
}

export async function runServe(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags('serve', argv, withLimitFlags(SERVE_FLAGS));
  if (v.help) {
    process.stdout.write(`${(await import('./help.js')).usageOf('serve')}\n`);
    return 0;
  }
  if (positionals.length) throw new UsageError(`serve takes no arguments, got "${positionals[0]}"`, 'serve');
  const url = redisUrl('serve', v.redis);
  const root = path.resolve(v.root ?? defaultRoot());
  const grants: TokenGrant[] = v.tokens ? await loadTokensFile(v.tokens) : [];
  for (const t of v.token ?? []) {
    const eq = t.indexOf('=');
    if (eq <= 0) throw new UsageError('--token: want CLIENT=TOKEN', 'serve');
    grants.push({ client: t.slice(0, eq), token: t.slice(eq + 1) });
  }
  if (grants.length === 0) throw new UsageError('no tokens: give --tokens FILE (or --token CLIENT=TOKEN); the service refuses anonymous callers', 'serve');
  const config = await serviceConfig(v.config, { maxContextBytes: v['max-context-size'], maxDockerfileBytes: v['max-dockerfile-size'] });
  const drainMs = (intFlag('serve', 'drain-seconds', v['drain-seconds'], 0) ?? DEFAULT_DRAIN_S) * 1000;
  const retention = retentionPolicy(v['store-keep-duration'], v['store-gc-interval']);
  const log = logger('buildlite-api');
  const metrics = new ServiceMetrics();

  const stop = new AbortController();
  const onEarly = () => stop.abort();
  process.once('SIGTERM', onEarly);
  process.once('SIGINT', onEarly);
  const workerId = v['embedded-worker'] ? (v.id ?? `${os.hostname()}-api-${randomBytes(3).toString('hex')}`) : undefined;
  // Every flag is checked before the wait for Redis: a typo must not look like a Redis outage.
  const embeddedOpts = workerId ? workerOptions('serve', { ...v, id: workerId }, url, root, log, metrics) : undefined;
  const contextUrls = urlPolicy('serve', v);
  if (!(await waitForRedis(url, log, stop.signal))) return 1;
  process.off('SIGTERM', onEarly);
  process.off('SIGINT', onEarly);

  const vault = workerId ? new SecretVault(workerId) : undefined;
  let worker: BuildWorker | undefined;
  if (embeddedOpts) worker = await BuildWorker.start({ ...embeddedOpts, ...(vault ? { vault } : {}) });
  const api = await ApiServer.start({
    redisUrl: url,
    listen: v.listen ?? '127.0.0.1:7070',
    tokens: grants,
    config,
    contexts: contextsSpec(v.contexts, root),
    tmpDir: path.join(root, 'tmp'),
    insecureRegistries: v['insecure-registry'] ?? [],
    logger: log,
    retention,
    metrics,
    ...(v.prefix ? { prefix: v.prefix } : {}),
    ...(vault ? { vault } : {}),
    checkContextUrl: (u) => checkContextUrl(u, contextUrls),
  });
  metrics.serveService({
    queueDepth: () => api.queueDepth(),
    workersAlive: () => api.workersAlive(),
    buildTotals: () => api.buildTotals(),
    limitTotals: () => api.limitTotals(),
    authFailureReasons: AUTH_FAILURE_REASONS,
  });
  const metricsServer = v.metrics ? await metrics.serve(v.metrics) : undefined;
  // Tests and wrappers read the chosen port from this line (with --listen HOST:0).
  process.stdout.write(`listening on ${(v.listen ?? '127.0.0.1:7070').replace(/:\d+$/, '')}:${api.port}\n`);
  await onShutdown(log, async () => {
    await api.close(drainMs);
    await worker?.close(drainMs);
    metricsServer?.close();
  });
  return 0;
}

export async function runWorker(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags('worker', argv, withLimitFlags(COMMON));
  if (v.help) {
    process.stdout.write(`${(await import('./help.js')).usageOf('worker')}\n`);
    return 0;
  }
  if (positionals.length) throw new UsageError(`worker takes no arguments, got "${positionals[0]}"`, 'worker');
  const url = redisUrl('worker', v.redis);
  const root = path.resolve(v.root ?? defaultRoot());
  const drainMs = (intFlag('worker', 'drain-seconds', v['drain-seconds'], 0) ?? DEFAULT_DRAIN_S) * 1000;
  const log = logger('buildlite-worker');
  const metrics = new ServiceMetrics();
  const stop = new AbortController();
  const onEarly = () => stop.abort();
  process.once('SIGTERM', onEarly);
  process.once('SIGINT', onEarly);
  const opts = workerOptions('worker', v, url, root, log, metrics);
  if (!(await waitForRedis(url, log, stop.signal))) return 1;
  process.off('SIGTERM', onEarly);
  process.off('SIGINT', onEarly);
  const worker = await BuildWorker.start(opts);
  metrics.setQueueDepthSource(() => worker.queueDepth());
  const metricsServer = v.metrics ? await metrics.serve(v.metrics) : undefined;
  process.stdout.write(`worker ${worker.id} ready\n`);
  await onShutdown(log, async () => {
    await worker.close(drainMs);
    metricsServer?.close();
  });
  return 0;
}
