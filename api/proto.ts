import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { BuildEvent, BuildEventBody, BuildResult } from '../core/build.js';
import { parseDigest } from '../core/digest.js';
import type { SourceRange, WireError } from '../core/errors.js';

/**
 * Loads api/*.proto at run time. tsc does not copy .proto files, so they are
 * looked up next to this module (running from source), in dist/api (the
 * service image copies them there; the bundle sits in dist/bundle), and in
 * the source tree beside dist/ (running the compiled or bundled CLI).
 */
function protoPath(name: string): string {
  for (const rel of [`./${name}`, `../api/${name}`, `../../api/${name}`]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error(`cannot find api/${name} next to ${fileURLToPath(import.meta.url)}: the .proto files ship with the package`);
}

const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

let loaded: { builds: grpc.ServiceClientConstructor; health: grpc.ServiceClientConstructor } | undefined;

export function loadServices(): { builds: grpc.ServiceClientConstructor; health: grpc.ServiceClientConstructor } {
  if (loaded) return loaded;
  const def = protoLoader.loadSync([protoPath('buildlite.proto'), protoPath('health.proto')], LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    buildlite: { v1: { Builds: grpc.ServiceClientConstructor } };
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  loaded = { builds: pkg.buildlite.v1.Builds, health: pkg.grpc.health.v1.Health };
  return loaded;
}

// ---- wire shapes (snake_case, as proto-loader gives them with keepCase) ----

export interface PbRange {
  file: string;
  start_line: number;
  end_line: number;
  start_column: number;
  end_column: number;
}
export interface PbWireError {
  code: string;
  message: string;
  retryable: boolean;
  range?: PbRange | null;
  details_json: string;
}
export interface PbBuildEvent {
  seq: number;
  body?: string;
  vertex?: { vertex: string; name: string; state: string; range?: PbRange | null; stage: string; error: string; at: number } | null;
  log?: { vertex: string; stream: string; data: Buffer } | null;
  progress?: { id: string; action: string; current: number; total: number; has_total: boolean } | null;
  warning?: { message: string; range?: PbRange | null; rule?: string; url?: string } | null;
  result?: { image_digest: string; config_digest: string; pushed: string[]; cache_hits: number; cache_misses: number; platforms?: Array<{ platform: string; image_digest: string; config_digest: string }> } | null;
  error?: PbWireError | null;
}

function rangeToPb(r: SourceRange | undefined): PbRange | null {
  if (!r) return null;
  return { file: r.file, start_line: r.startLine, end_line: r.endLine, start_column: r.startColumn ?? 0, end_column: r.endColumn ?? 0 };
}

function rangeFromPb(r: PbRange | null | undefined): SourceRange | undefined {
  if (!r || !r.file) return undefined;
  return { file: r.file, startLine: r.start_line, endLine: r.end_line, ...(r.start_column ? { startColumn: r.start_column } : {}), ...(r.end_column ? { endColumn: r.end_column } : {}) };
}

export function wireErrorToPb(e: WireError): PbWireError {
  return { code: e.code, message: e.message, retryable: e.retryable, range: rangeToPb(e.range), details_json: JSON.stringify(e.details ?? {}) };
}

export function wireErrorFromPb(e: PbWireError): WireError {
  let details: Record<string, string | number | boolean> = {};
  try {
    const d = JSON.parse(e.details_json || '{}') as unknown;
    if (d && typeof d === 'object' && !Array.isArray(d)) details = d as Record<string, string | number | boolean>;
  } catch {
    // Unreadable details are dropped; code and message still tell the story.
  }
  const range = rangeFromPb(e.range);
  return { code: e.code as WireError['code'], message: e.message, retryable: e.retryable, ...(range ? { range } : {}), details };
}

export function eventToPb(ev: BuildEvent): PbBuildEvent {
  switch (ev.type) {
    case 'vertex':
      return { seq: ev.seq, vertex: { vertex: ev.vertex, name: ev.name, state: ev.state, range: rangeToPb(ev.range), stage: ev.stage ?? '', error: ev.error ?? '', at: ev.at } };
    case 'log':
      return { seq: ev.seq, log: { vertex: ev.vertex, stream: ev.stream, data: Buffer.from(ev.data) } };
    case 'progress':
      return { seq: ev.seq, progress: { id: ev.id, action: ev.action, current: ev.current, total: ev.total ?? 0, has_total: ev.total !== undefined } };
    case 'warning':
      return { seq: ev.seq, warning: { message: ev.message, range: rangeToPb(ev.range), rule: ev.rule ?? '', url: ev.url ?? '' } };
    case 'result':
      return {
        seq: ev.seq,
        result: {
          image_digest: ev.result.imageDigest,
          config_digest: ev.result.configDigest ?? '',
          pushed: [...ev.result.pushed],
          cache_hits: ev.result.cache.hits,
          cache_misses: ev.result.cache.misses,
          platforms: (ev.result.platforms ?? []).map((p) => ({ platform: p.platform, image_digest: p.imageDigest, config_digest: p.configDigest })),
        },
      };
    case 'error':
      return { seq: ev.seq, error: wireErrorToPb(ev.error) };
  }
}

export function eventFromPb(pb: PbBuildEvent): BuildEvent {
  const seq = Number(pb.seq);
  let body: BuildEventBody;
  if (pb.vertex) {
    const v = pb.vertex;
    const range = rangeFromPb(v.range);
    body = {
      type: 'vertex',
      vertex: parseDigest(v.vertex),
      name: v.name,
      state: v.state as 'started',
      at: Number(v.at),
      ...(range ? { range } : {}),
      ...(v.stage ? { stage: v.stage } : {}),
      ...(v.error ? { error: v.error } : {}),
    };
  } else if (pb.log) body = { type: 'log', vertex: parseDigest(pb.log.vertex), stream: pb.log.stream === 'stderr' ? 'stderr' : 'stdout', data: Buffer.from(pb.log.data).toString() };
  else if (pb.progress) {
    const p = pb.progress;
    body = { type: 'progress', id: p.id, action: p.action, current: Number(p.current), ...(p.has_total ? { total: Number(p.total) } : {}) };
  } else if (pb.warning) {
    const range = rangeFromPb(pb.warning.range);
    const { rule, url } = pb.warning;
    body = { type: 'warning', message: pb.warning.message, ...(range ? { range } : {}), ...(rule ? { rule } : {}), ...(url ? { url } : {}) };
  } else if (pb.result) {
    const r = pb.result;
    const platforms = (r.platforms ?? []).map((p) => ({ platform: p.platform, imageDigest: parseDigest(p.image_digest), configDigest: parseDigest(p.config_digest) }));
    const result: BuildResult = {
      imageDigest: parseDigest(r.image_digest),
      ...(r.config_digest ? { configDigest: parseDigest(r.config_digest) } : {}),
      ...(platforms.length ? { platforms } : {}),
      pushed: r.pushed,
      cache: { hits: r.cache_hits, misses: r.cache_misses },
    };
    body = { type: 'result', result };
  } else if (pb.error) body = { type: 'error', error: wireErrorFromPb(pb.error) };
  else body = { type: 'warning', message: 'an event of a kind this client does not know was skipped' };
  return { ...body, seq } as BuildEvent;
}
