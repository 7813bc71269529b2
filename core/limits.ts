/**
 * The bounds an operator puts on builds, in one vocabulary for every place
 * they are set (worker and serve flags, the service config file, per-token
 * overrides in the tokens file, embedded `build` flags) and every place they
 * are enforced (API, queue, executor, pulls, layers, logs).
 *
 * Precedence, highest first:
 *   1. the worker's own limits: a ceiling no build on that worker exceeds;
 *   2. the token's overrides (tokens file), which may be above or below
 *      the service defaults but are cut to the worker's ceiling;
 *   3. the service defaults (config file `limits:`);
 *   4. BUILD_LIMIT_DEFAULTS.
 * An embedded `build` has only its own flags over the defaults.
 *
 * Client quotas (ClientQuota) are the API's alone: a token's `quota:` over
 * the config file's `quota:` over CLIENT_QUOTA_DEFAULTS; no worker cuts them.
 */
import { formatBytes, parseBytes } from './bytes.js';
import { formatSeconds, parseDuration } from './duration.js';
import { CodedError } from './errors.js';

export interface BuildLimits {
  /** Wall time of one RUN step. */
  readonly stepTimeoutMs: number;
  /** Wall time of a whole build, queue time excluded. */
  readonly buildTimeoutMs: number;
  /** Memory of one RUN step, swap included where the cgroup can count it. */
  readonly memoryBytes: number;
  /** CPU of one RUN step as a CFS quota in CPUs (1.5 = one and a half); 0: no quota. */
  readonly cpus: number;
  /** Processes and threads of one RUN step. */
  readonly pids: number;
  /** An uploaded build context (service) or a context on stdin. */
  readonly maxContextBytes: number;
  readonly maxDockerfileBytes: number;
  /** One layer as stored (compressed), pulled or made. */
  readonly maxLayerBytes: number;
  /** One layer unpacked. */
  readonly maxLayerUnpackedBytes: number;
  /** The whole image, compressed and unpacked. */
  readonly maxImageBytes: number;
  readonly maxImageUnpackedBytes: number;
  /** Full log of one step that is kept (the event stream is capped separately). */
  readonly maxStepLogBytes: number;
  /** What one build may add to the worker's state directory (layers, snapshots, downloads). */
  readonly maxBuildDiskBytes: number;
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/**
 * Defaults for a shared CI machine: generous for real builds (a large
 * monorepo image, a compiler step), small enough that one runaway build
 * cannot starve the others or fill the disk.
 */
export const BUILD_LIMIT_DEFAULTS: BuildLimits = {
  // A long compile is tens of minutes; an hour catches a hung step without cutting real work.
  stepTimeoutMs: 60 * 60_000,
  buildTimeoutMs: 2 * 60 * 60_000,
  // Enough for a JVM or webpack build; two runaway steps still leave a 16 GiB machine alive.
  memoryBytes: 4 * GiB,
  // No quota by default: CPU is shared fairly by the scheduler; operators on busy machines set one.
  cpus: 0,
  // `make -j` and Node test runners stay far below; a fork bomb stops here.
  pids: 4096,
  maxContextBytes: 2 * GiB,
  // Hand-written Dockerfiles are a few KiB; generated ones stay well under this.
  maxDockerfileBytes: 1 * MiB,
  maxLayerBytes: 10 * GiB,
  maxLayerUnpackedBytes: 20 * GiB,
  maxImageBytes: 20 * GiB,
  maxImageUnpackedBytes: 50 * GiB,
  // The last 64 MiB of a runaway log is more than anyone reads; the rest is dropped and the log says so.
  maxStepLogBytes: 64 * MiB,
  maxBuildDiskBytes: 50 * GiB,
};

export type LimitName = keyof BuildLimits;

type Kind = 'duration' | 'bytes' | 'count' | 'cpus';

/** Each limit's name in flags and YAML, the kind of value it takes, and what it bounds (help and README). */
export const LIMIT_SPECS: Readonly<Record<LimitName, { readonly key: string; readonly kind: Kind; readonly what: string }>> = {
  stepTimeoutMs: { key: 'step-timeout', kind: 'duration', what: 'wall time of one RUN step' },
  buildTimeoutMs: { key: 'build-timeout', kind: 'duration', what: 'wall time of a whole build' },
  memoryBytes: { key: 'memory', kind: 'bytes', what: 'memory of one RUN step (swap included)' },
  cpus: { key: 'cpus', kind: 'cpus', what: 'CPUs of one RUN step (0: no quota)' },
  pids: { key: 'pids', kind: 'count', what: 'processes of one RUN step' },
  maxContextBytes: { key: 'max-context-size', kind: 'bytes', what: 'build context' },
  maxDockerfileBytes: { key: 'max-dockerfile-size', kind: 'bytes', what: 'Dockerfile' },
  maxLayerBytes: { key: 'max-layer-size', kind: 'bytes', what: 'one layer, compressed' },
  maxLayerUnpackedBytes: { key: 'max-layer-unpacked-size', kind: 'bytes', what: 'one layer, unpacked' },
  maxImageBytes: { key: 'max-image-size', kind: 'bytes', what: 'whole image, compressed' },
  maxImageUnpackedBytes: { key: 'max-image-unpacked-size', kind: 'bytes', what: 'whole image, unpacked' },
  maxStepLogBytes: { key: 'max-step-log-size', kind: 'bytes', what: 'full log kept per step' },
  maxBuildDiskBytes: { key: 'max-build-disk', kind: 'bytes', what: 'disk one build may add to the state directory' },
};

const BY_KEY = new Map(Object.entries(LIMIT_SPECS).map(([name, s]) => [s.key, name as LimitName]));

/** A limit's value as people write it: `30m`, `4GiB`, `1.5`, `4096`. */
export function parseLimit(name: LimitName, text: string): number {
  const { key, kind } = LIMIT_SPECS[name];
  let v: number;
  try {
    v = kind === 'duration' ? parseDuration(text) : kind === 'bytes' ? parseBytes(text) : Number(text.trim());
  } catch (err) {
    throw new CodedError('INVALID_OPTION', `${key} "${text.slice(0, 40)}": ${(err as Error).message}`);
  }
  if (!isValidLimit(name, v)) throw new CodedError('INVALID_OPTION', `${key} "${text.slice(0, 40)}": want ${wanted(name)}`);
  return v;
}

/** The longest a timer can wait (2^31-1 ms, ~24.8 days): a longer one fires at once. */
const MAX_DURATION_MS = 2 ** 31 - 1;

/**
 * A value a limit can take: a CPU count from 0.01 (the kernel's 1 ms quota per
 * 100 ms period) to 1024, or 0 for none; a duration up to 24 days (what a
 * timer can wait); anything else a positive integer.
 */
export function isValidLimit(name: LimitName, v: number): boolean {
  const kind = LIMIT_SPECS[name].kind;
  if (kind === 'cpus') return Number.isFinite(v) && (v === 0 || (v >= 0.01 && v <= 1024));
  return Number.isSafeInteger(v) && v > 0 && (kind !== 'duration' || v <= MAX_DURATION_MS);
}

function wanted(name: LimitName): string {
  const kind = LIMIT_SPECS[name].kind;
  if (kind === 'cpus') return 'a number of CPUs from 0.01, e.g. 1.5 (0: no quota)';
  if (kind === 'duration') return 'a positive duration up to 24d';
  return kind === 'count' ? 'a positive integer' : `a positive ${kind}`;
}

/**
 * Limits given as numbers (an options object, a job): each one checked, so a
 * bad value fails where it was set, naming it, and never halfway through a build.
 */
export function checkLimits(limits: Partial<BuildLimits> | undefined, where: string): void {
  for (const [name, v] of Object.entries(limits ?? {}) as Array<[string, unknown]>) {
    if (v === undefined) continue;
    if (!Object.hasOwn(LIMIT_SPECS, name)) throw new CodedError('INVALID_OPTION', `${where}: unknown limit ${JSON.stringify(name.slice(0, 40))}`);
    if (typeof v !== 'number' || !isValidLimit(name as LimitName, v)) {
      throw new CodedError('INVALID_OPTION', `${where}.${name} (${LIMIT_SPECS[name as LimitName].key}): want ${wanted(name as LimitName)}, got ${JSON.stringify(v)?.slice(0, 40)}`);
    }
  }
}

/** A limit's value as messages show it: `10s`, `256 MiB`, `1.5 CPUs`, `4096`. */
export function formatLimit(name: LimitName, value: number): string {
  const kind = LIMIT_SPECS[name].kind;
  if (kind === 'duration') return formatSeconds(value);
  if (kind === 'bytes') return formatBytes(value);
  if (kind === 'cpus') return value === 0 ? 'no quota' : `${value} CPU${value === 1 ? '' : 's'}`;
  return String(value);
}

/**
 * A `limits:` mapping of a config or tokens file (`{memory: 2GiB, step-timeout: 30m}`)
 * → the limits it sets. Unknown keys are errors: a typo must not silently leave a limit unset.
 */
export function limitsFromRecord(record: unknown, where: string): Partial<BuildLimits> {
  if (record === undefined || record === null) return {};
  if (typeof record !== 'object' || Array.isArray(record)) throw new CodedError('INVALID_OPTION', `${where}: limits must be a mapping of limit: value`);
  const out: Partial<Record<LimitName, number>> = {};
  for (const [key, raw] of Object.entries(record)) {
    const name = BY_KEY.get(key);
    if (!name) throw new CodedError('INVALID_OPTION', `${where}: unknown limit "${key.slice(0, 40)}" (known: ${[...BY_KEY.keys()].join(', ')})`);
    if (typeof raw !== 'string' && typeof raw !== 'number') throw new CodedError('INVALID_OPTION', `${where}: ${key} must be a value such as 30m, 4GiB or 1.5`);
    try {
      out[name] = parseLimit(name, String(raw));
    } catch (err) {
      // parseLimit names the key and the value; the file and the section are only known here.
      throw new CodedError('INVALID_OPTION', `${where}: ${(err as Error).message}`);
    }
  }
  return out;
}

/**
 * Only the limits these layers set, later layers winning, nothing from the
 * defaults: what the API sends with a build, so that a worker fills every
 * limit the operator left unset from its own ceiling.
 */
export function setLimits(...layers: ReadonlyArray<Partial<BuildLimits> | undefined>): Partial<BuildLimits> {
  const out: Partial<Record<LimitName, number>> = {};
  for (const l of layers) for (const [k, v] of Object.entries(l ?? {})) if (v !== undefined) out[k as LimitName] = v;
  return out;
}

/** Later layers win: `mergeLimits(defaults, serviceConfig, token)`. */
export function mergeLimits(...layers: ReadonlyArray<Partial<BuildLimits> | undefined>): BuildLimits {
  return { ...BUILD_LIMIT_DEFAULTS, ...setLimits(...layers) };
}

/**
 * What a build may use on a worker: what it asks (the service's defaults and
 * its token's overrides, carried in the job), cut to the worker's ceiling. A
 * CPU quota of 0 means none, so it is the largest value, not the smallest.
 */
export function clampLimits(ceiling: BuildLimits, asked: Partial<BuildLimits> | undefined): BuildLimits {
  const out: Record<string, number> = { ...ceiling };
  for (const [k, v] of Object.entries(asked ?? {})) {
    if (v === undefined) continue;
    const c = ceiling[k as LimitName];
    out[k] = k === 'cpus' ? (c === 0 ? v : v === 0 ? c : Math.min(c, v)) : Math.min(c, v);
  }
  return out as unknown as BuildLimits;
}

/** Per client, at the API: how many builds at once and how fast it may submit. */
export interface ClientQuota {
  readonly maxConcurrentBuilds: number;
  readonly maxSubmissionsPerMinute: number;
  /** Over `maxConcurrentBuilds`: `queue` (wait for one of the client's builds to end) or `refuse`. */
  readonly overQuota: 'queue' | 'refuse';
}

export const CLIENT_QUOTA_DEFAULTS: ClientQuota = {
  // A CI pipeline fans out a handful of images; 8 at once keeps one team from taking every worker slot.
  maxConcurrentBuilds: 8,
  // A loop gone wrong submits hundreds a minute; a busy pipeline a few dozen.
  maxSubmissionsPerMinute: 60,
  overQuota: 'queue',
};

export type QuotaName = keyof ClientQuota;

/** Each quota's name in the config and tokens files (`quota:`), for parsing, help and README. */
export const QUOTA_SPECS: Readonly<Record<QuotaName, { readonly key: string; readonly what: string }>> = {
  maxConcurrentBuilds: { key: 'max-concurrent-builds', what: 'builds of one client running at once, on all workers (with over-quota refuse, queued ones count too)' },
  maxSubmissionsPerMinute: { key: 'max-submissions-per-minute', what: 'submits of one client in any 60 s' },
  overQuota: { key: 'over-quota', what: 'over max-concurrent-builds: queue (wait for one of its builds to end) or refuse at submit' },
};

const QUOTA_BY_KEY = new Map(Object.entries(QUOTA_SPECS).map(([name, s]) => [s.key, name as QuotaName]));

/**
 * A `quota:` mapping of a config or tokens file → the quotas it sets.
 * Unknown keys are errors, as for limits.
 */
export function quotaFromRecord(record: unknown, where: string): Partial<ClientQuota> {
  if (record === undefined || record === null) return {};
  if (typeof record !== 'object' || Array.isArray(record)) throw new CodedError('INVALID_OPTION', `${where}: quota must be a mapping of quota: value`);
  const out: { -readonly [K in QuotaName]?: ClientQuota[K] } = {};
  for (const [key, raw] of Object.entries(record)) {
    const name = QUOTA_BY_KEY.get(key);
    if (!name) throw new CodedError('INVALID_OPTION', `${where}: unknown quota "${key.slice(0, 40)}" (known: ${[...QUOTA_BY_KEY.keys()].join(', ')})`);
    if (name === 'overQuota') {
      if (raw !== 'queue' && raw !== 'refuse') throw new CodedError('INVALID_OPTION', `${where}: ${key} "${String(raw).slice(0, 40)}": want queue or refuse`);
      out.overQuota = raw;
      continue;
    }
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(n) || n < 1) throw new CodedError('INVALID_OPTION', `${where}: ${key} "${String(raw).slice(0, 40)}": want a positive integer`);
    out[name] = n;
  }
  return out;
}

/** Later layers win, on CLIENT_QUOTA_DEFAULTS. */
export function mergeQuota(...layers: ReadonlyArray<Partial<ClientQuota> | undefined>): ClientQuota {
  const out: Record<string, unknown> = { ...CLIENT_QUOTA_DEFAULTS };
  for (const l of layers) for (const [k, v] of Object.entries(l ?? {})) if (v !== undefined) out[k] = v;
  return out as unknown as ClientQuota;
}

/**
 * Why a build was stopped or refused, as the metric
 * `buildlite_builds_limited_total{limit}` labels it: a limit's name, or a
 * client quota refused at submit (`concurrency`, `rate`). A bounded set, so
 * the label's cardinality is fixed.
 */
export const LIMITED_REASONS: readonly string[] = [...(Object.keys(LIMIT_SPECS) as LimitName[]), 'concurrency', 'rate'];
export type LimitedReason = LimitName | 'concurrency' | 'rate';

export function isLimitedReason(v: unknown): v is LimitedReason {
  return typeof v === 'string' && LIMITED_REASONS.includes(v);
}

