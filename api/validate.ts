import type { CacheSpec, NamedContext, OutputSpec } from '../core/build.js';
import { formatBytes } from '../core/bytes.js';
import { isDigest, type Digest } from '../core/digest.js';
import { CodedError } from '../core/errors.js';
import { parseGitUrl } from '../core/git-url.js';
import { LimitError } from '../core/limit-error.js';
import { formatLimit } from '../core/limits.js';
import type { Platform } from '../core/oci.js';
import { MAX_TARGET_PLATFORMS, targetPlatforms } from '../core/platform.js';
import { parseReference } from '../core/reference.js';
import { checkNetworkRequest } from '../core/request-rules.js';
import type { QueuedRequest } from '../worker/jobs.js';
import type { Principal } from './auth.js';

/**
 * Limits on what one request may carry (docs/security.md T10), beside the build
 * limits: the Dockerfile's size is a build limit (maxDockerfileBytes in
 * core/limits.ts), set per service and per token.
 */
export interface RequestLimits {
  readonly maxSecrets: number;
  readonly maxSecretBytes: number;
}

export const REQUEST_LIMIT_DEFAULTS = {
  maxSecrets: 64,
  // Tokens and keys, not payloads: 512 KiB is more than any credential file.
  maxSecretBytes: 512 << 10,
} satisfies Required<RequestLimits>;

const MAX_ENTRIES = 512; // build args, labels
const MAX_VALUE_BYTES = 64 << 10;
const MAX_REFS = 32;
const ARG_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,255}$/;
const SECRET_ID = /^[A-Za-z0-9._-]{1,128}$/;
const NAME = /^[A-Za-z0-9._-]{1,255}$/;
const PROJECT = /^[A-Za-z0-9._:/@-]{1,255}$/;
/** A named context's name: a stage name or an image reference, as FROM and --from write them. */
const CONTEXT_NAME = /^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$/;
const MAX_NAMED_CONTEXTS = 32;

/** The submit message as proto-loader gives it (keepCase, defaults on). */
export interface PbBuildRequest {
  dockerfile: string;
  dockerfile_name: string;
  dockerignore: string;
  build_args: Array<{ key: string; value: string }>;
  target: string;
  labels: Array<{ key: string; value: string }>;
  outputs: Array<{ type: string; refs: string[] }>;
  no_cache: boolean;
  no_cache_filter: string[];
  network: string;
  allow: string[];
  platform?: PbPlatform | null;
  platforms?: PbPlatform[];
  secrets: Array<{ id: string; value: Buffer }>;
  context_digest: string;
  project: string;
  source_date_epoch: number;
  has_source_date_epoch: boolean;
  cache_from: PbCacheSpec[];
  cache_to: PbCacheSpec[];
  named_contexts?: PbNamedContext[];
  context_url?: string;
  context_file?: string;
}

export interface PbNamedContext {
  name: string;
  type: string;
  context_digest: string;
  ref: string;
  tag: string;
  digest: string;
  url: string;
}

export interface PbCacheSpec {
  type: string;
  ref: string;
  mode: string;
  ignore_error: boolean;
}

export interface ValidatedSubmit {
  /** Everything but the context (known once the upload ends). */
  readonly request: Omit<QueuedRequest, 'context'>;
  readonly secrets: ReadonlyMap<string, Buffer>;
  readonly contextDigest?: Digest;
  /** A context the worker fetches (checked against the URL policy by the server before it queues). */
  readonly contextUrl?: { readonly url: string; readonly file: string };
  readonly project?: string;
}

function bad(message: string): CodedError {
  return new CodedError('INVALID_ARGUMENT', message);
}

function str(v: unknown, field: string, max: number, pattern?: RegExp): string {
  if (typeof v !== 'string') throw bad(`${field} must be a string`);
  if (Buffer.byteLength(v) > max) throw bad(`${field} is longer than ${max} bytes`);
  if (v.includes('\0')) throw bad(`${field} contains a NUL character`);
  if (pattern && v !== '' && !pattern.test(v)) throw bad(`${field} "${v.slice(0, 80)}" has characters that are not allowed`);
  return v;
}

/** An image reference, parsed now so a bad one (or one carrying a password) never reaches the queue; the message is redacted. */
function ref(v: unknown, field: string): string {
  const text = str(v, field, 512);
  if (text === '') throw bad(`${field} is empty`);
  try {
    parseReference(text);
  } catch (err) {
    throw bad(`${field}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return text;
}

function list<T>(v: unknown, field: string, max: number): T[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad(`${field} must be a list`);
  if (v.length > max) throw bad(`${field} has more than ${max} entries`);
  return v as T[];
}

function pairs(v: unknown, field: string, keyPattern?: RegExp): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [i, kv] of list<{ key: unknown; value: unknown }>(v, field, MAX_ENTRIES).entries()) {
    if (!kv || typeof kv !== 'object') throw bad(`${field}[${i}] must be a key/value pair`);
    const key = str(kv.key, `${field}[${i}].key`, 1024, keyPattern);
    if (key === '') throw bad(`${field}[${i}] has an empty key`);
    if (Object.hasOwn(out, key)) throw bad(`${field}: "${key}" given twice`);
    out[key] = str(kv.value, `${field}[${i}].value`, MAX_VALUE_BYTES);
  }
  return out;
}

/**
 * Checks every field of a submit request and turns it into a queued request.
 * Remote clients never name host paths: only registry and image outputs exist
 * here. Entitlements need both halves: the build asks (`allow`) and the
 * caller's token grants. Limits come from the operator only (the caller's
 * policy), never from the request.
 */
export function validateSubmit(pb: PbBuildRequest | null | undefined, who: Principal, limits: RequestLimits = REQUEST_LIMIT_DEFAULTS): ValidatedSubmit {
  if (!pb || typeof pb !== 'object') throw bad('the first Submit message must carry the build request');
  const maxDockerfile = who.policy.limits.maxDockerfileBytes;
  const dockerfile = str(pb.dockerfile, 'dockerfile', Number.MAX_SAFE_INTEGER);
  const size = Buffer.byteLength(dockerfile);
  if (size > maxDockerfile) throw new LimitError('maxDockerfileBytes', maxDockerfile, `the Dockerfile is ${formatBytes(size)}: the limit is ${formatLimit('maxDockerfileBytes', maxDockerfile)}`);
  const contextUrl = contextUrlOf(pb, dockerfile);
  if (!contextUrl && dockerfile.trim() === '') throw bad('the Dockerfile is empty');
  const dockerfileName = str(pb.dockerfile_name, 'dockerfile_name', 255, NAME) || 'Dockerfile';
  const dockerignore = str(pb.dockerignore, 'dockerignore', maxDockerfile);
  const buildArgs = pairs(pb.build_args, 'build_args', ARG_NAME);
  const labels = pairs(pb.labels, 'labels');
  const target = str(pb.target, 'target', 255, NAME);

  const outputs: OutputSpec[] = [];
  for (const [i, o] of list<{ type: unknown; refs: unknown }>(pb.outputs, 'outputs', 8).entries()) {
    const type = str(o?.type, `outputs[${i}].type`, 16);
    if (type !== 'registry' && type !== 'image') throw bad(`outputs[${i}].type "${type}": a remote build can only push (registry) or tag on the worker (image)`);
    const refs = list<unknown>(o.refs, `outputs[${i}].refs`, MAX_REFS).map((r, j) => ref(r, `outputs[${i}].refs[${j}]`));
    if (refs.length === 0) throw bad(`outputs[${i}] needs at least one non-empty ref`);
    outputs.push({ type, refs });
  }
  const cacheFrom = cacheSpecs(pb.cache_from, 'cache_from');
  const cacheTo = cacheSpecs(pb.cache_to, 'cache_to');
  const noCacheFilter = list<unknown>(pb.no_cache_filter, 'no_cache_filter', 128).map((s, i) => str(s, `no_cache_filter[${i}]`, 255, NAME));

  const allow = list<unknown>(pb.allow, 'allow', 8).map((s, i) => str(s, `allow[${i}]`, 64));
  const network = checkNetworkRequest({ network: str(pb.network, 'network', 16) || 'default', allow });
  for (const a of allow) {
    if (!who.entitlements.has(a)) throw new CodedError('PERMISSION_DENIED', `the token of client "${who.client}" is not granted ${a}: the operator grants it in the tokens file`);
  }

  const platforms = platformsOf(pb);

  const secrets = new Map<string, Buffer>();
  for (const [i, s] of list<{ id: unknown; value: unknown }>(pb.secrets, 'secrets', limits.maxSecrets).entries()) {
    const id = str(s?.id, `secrets[${i}].id`, 128, SECRET_ID);
    if (id === '') throw bad(`secrets[${i}] has no id`);
    if (!Buffer.isBuffer(s.value)) throw bad(`secrets[${i}].value must be bytes`);
    if (s.value.length > limits.maxSecretBytes) throw new CodedError('LIMIT_EXCEEDED', `secret "${id}" is ${formatBytes(s.value.length)}: the limit is ${formatBytes(limits.maxSecretBytes)}`);
    if (secrets.has(id)) throw bad(`secret "${id}" given twice`);
    secrets.set(id, Buffer.from(s.value));
  }

  const digestText = str(pb.context_digest, 'context_digest', 80);
  if (digestText !== '' && !isDigest(digestText)) throw bad(`context_digest "${digestText}": want sha256:<64 hex>`);
  if (digestText !== '' && contextUrl) throw bad('send either context_url or context_digest, not both');
  const project = str(pb.project, 'project', 255, PROJECT);
  if (pb.has_source_date_epoch && !(Number.isSafeInteger(pb.source_date_epoch) && pb.source_date_epoch >= 0)) throw bad('source_date_epoch must be a non-negative integer');

  const namedContexts = namedContextsOf(pb.named_contexts);
  const request: Omit<QueuedRequest, 'context'> = {
    dockerfile,
    dockerfileName,
    ...(dockerignore !== '' ? { dockerignore } : {}),
    buildArgs,
    ...(target ? { target } : {}),
    labels,
    outputs,
    ...(cacheFrom.length ? { cacheFrom } : {}),
    ...(cacheTo.length ? { cacheTo } : {}),
    noCache: pb.no_cache === true,
    noCacheFilter,
    secrets: [...secrets.keys()].map((id) => ({ id })),
    network,
    allow,
    ...(platforms.length ? { platforms } : {}),
    ...(pb.has_source_date_epoch ? { sourceDateEpoch: pb.source_date_epoch } : {}),
    ...(Object.keys(who.policy.jobLimits).length ? { limits: who.policy.jobLimits } : {}),
    ...(namedContexts ? { namedContexts } : {}),
  };
  return { request, secrets, ...(digestText ? { contextDigest: digestText } : {}), ...(contextUrl ? { contextUrl } : {}), ...(project ? { project } : {}) };
}

/**
 * `context_url` and `context_file`: the form only (bounded, no NUL); the
 * URL's scheme, credentials and addresses are the service's URL policy,
 * which the server applies before it queues. The Dockerfile of a URL context
 * is read from inside it on the worker, so the request carries none.
 */
function contextUrlOf(pb: PbBuildRequest, dockerfile: string): { url: string; file: string } | undefined {
  const url = str(pb.context_url ?? '', 'context_url', 4096);
  const file = str(pb.context_file ?? '', 'context_file', 4096);
  if (url === '') {
    if (file !== '') throw bad('context_file names the Dockerfile inside context_url, which is not set');
    return undefined;
  }
  if (dockerfile !== '') throw bad('with context_url the Dockerfile is read from inside the fetched context: send its path as context_file, not its text');
  return { url, file: file || 'Dockerfile' };
}

/**
 * `--build-context` of a remote build. Directories (and OCI layouts, which
 * are directories) come as digests of contexts stored with PutContext:
 * remote clients never name paths on the worker. Image references and git
 * URLs are parsed now, so a bad one (or one carrying a password) never
 * reaches the queue.
 */
function namedContextsOf(v: unknown): Record<string, NamedContext> | undefined {
  const out: Record<string, NamedContext> = {};
  for (const [i, c] of list<Partial<PbNamedContext> | null>(v, 'named_contexts', MAX_NAMED_CONTEXTS).entries()) {
    const field = `named_contexts[${i}]`;
    const name = str(c?.name, `${field}.name`, 255, CONTEXT_NAME);
    if (name === '') throw bad(`${field} has no name`);
    if (Object.hasOwn(out, name)) throw bad(`named context "${name}" given twice`);
    const type = str(c?.type, `${field}.type`, 16);
    const digestOf = (f: 'context_digest' | 'digest'): Digest | undefined => {
      const d = str(c?.[f] ?? '', `${field}.${f}`, 80);
      if (d !== '' && !isDigest(d)) throw bad(`${field}.${f} "${d}": want sha256:<64 hex>`);
      return d === '' ? undefined : d;
    };
    switch (type) {
      case 'local':
      case 'oci-layout': {
        const stored = digestOf('context_digest');
        if (!stored) throw bad(`${field}: a ${type} context is uploaded with PutContext and named by context_digest`);
        if (type === 'local') out[name] = { type, source: { digest: stored } };
        else {
          const tag = str(c?.tag ?? '', `${field}.tag`, 128, NAME);
          const digest = digestOf('digest');
          out[name] = { type, source: { digest: stored }, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
        }
        break;
      }
      case 'image':
        out[name] = { type, ref: ref(c?.ref, `${field}.ref`) };
        break;
      case 'git': {
        const url = str(c?.url, `${field}.url`, 4096);
        try {
          parseGitUrl(url);
        } catch (err) {
          throw bad(`${field}.url: ${(err as Error).message}`);
        }
        out[name] = { type, url };
        break;
      }
      default:
        throw bad(`${field}.type "${type.slice(0, 16)}": want local, oci-layout, image or git`);
    }
  }
  return Object.keys(out).length ? out : undefined;
}

/** `--cache-from`/`--cache-to` of a remote build: registry caches only (a local dir would be the worker's). */
function cacheSpecs(v: unknown, field: string): CacheSpec[] {
  return list<Partial<PbCacheSpec> | null>(v, field, 8).map((c, i) => {
    const type = str(c?.type, `${field}[${i}].type`, 16);
    if (type !== 'registry') throw bad(`${field}[${i}].type "${type}": a remote build imports and exports registry caches only (type=registry,ref=REF); a local directory would be on the worker's disk`);
    if (c?.ref === '') throw bad(`${field}[${i}] needs a ref`);
    const cacheRef = ref(c?.ref, `${field}[${i}].ref`);
    const mode = str(c?.mode ?? '', `${field}[${i}].mode`, 8);
    if (mode !== '' && mode !== 'min' && mode !== 'max') throw bad(`${field}[${i}].mode "${mode}": want min or max`);
    return { type, ref: cacheRef, ...(mode ? { mode } : {}), ...(c?.ignore_error === true ? { ignoreError: true } : {}) };
  });
}

/** A build id as clients send it back: what `randomUUID` makes. */
export function validateBuildId(v: unknown): string {
  const id = str(v, 'build_id', 64);
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id)) throw bad(`build_id "${id.slice(0, 64)}" is not a build id`);
  return id;
}

interface PbPlatform {
  os: string;
  architecture: string;
  variant: string;
}

/** `platforms` (or the older single `platform`), under the rule every entry point applies (core/platform.ts). */
function platformsOf(pb: PbBuildRequest): Platform[] {
  const given = list<PbPlatform | null>(pb.platforms, 'platforms', MAX_TARGET_PLATFORMS);
  const raw = given.length ? given : pb.platform && (pb.platform.os || pb.platform.architecture) ? [pb.platform] : [];
  if (raw.length === 0) return [];
  const parsed = raw.map((p, i) => {
    const os = str(p?.os, `platforms[${i}].os`, 32, NAME);
    const architecture = str(p?.architecture, `platforms[${i}].architecture`, 32, NAME);
    const variant = str(p?.variant ?? '', `platforms[${i}].variant`, 16, NAME);
    if (!os || !architecture) throw bad(`platforms[${i}] needs an os and an architecture`);
    return { os, architecture, ...(variant ? { variant } : {}) };
  });
  return targetPlatforms(parsed);
}
