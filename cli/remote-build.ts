import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pack as tarPack, type Pack } from 'tar-stream';
import type { BuildEvent, BuildResult } from '../core/build.js';
import type { BuildliteError, WireError } from '../core/errors.js';
import { parseIgnoreFile, PathMatcher } from '../core/ignore.js';
import { BuildliteClient, SERVER_PLACEHOLDER, type SubmitRequest } from '../api/index.js';
import type { ParsedBuild } from './commands/build.js';
import { createRenderer } from './progress.js';
import { UsageError } from './usage.js';

/** How often a dropped Watch stream is resumed before the CLI gives up. */
const WATCH_RETRIES = 20;

/**
 * Remote mode (`build --server ADDR --token T`): packs the context, uploads it
 * unless the server already has that digest, submits, and renders the build's
 * events exactly as a local build does, resuming the event stream from the
 * last seq when it drops. Exit codes as local mode: 0 built, 1 failed.
 */
export async function runRemoteBuild(p: ParsedBuild): Promise<number> {
  if (!p.server) throw new UsageError('--server ADDR is required for a remote build', 'build');
  const token = p.token ?? process.env['BUILDLITE_TOKEN'];
  if (!token) throw new UsageError('a remote build needs --token T (or BUILDLITE_TOKEN)', 'build');
  for (const o of p.request.outputs ?? []) {
    if (o.type !== 'registry' && o.type !== 'image') throw new UsageError(`--output type=${o.type} writes on the server's machine: a remote build can only push (--push or type=registry)`, 'build');
  }
  if (p.request.cacheFrom || p.request.cacheTo) throw new UsageError('--cache-from/--cache-to are not available in remote mode yet', 'build');
  if (!('dir' in p.request.context)) throw new UsageError('a remote build needs a context directory', 'build');

  const client = new BuildliteClient(p.server, token);
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'buildlite-ctx-'));
  const renderer = createRenderer(p.progress, p.request.dockerfile);
  let buildId: string | undefined;
  const abort = new AbortController();
  const onSignal = () => {
    abort.abort();
    if (buildId) void client.cancel(buildId).catch(() => undefined);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let result: BuildResult | undefined;
  let error: WireError | undefined;
  try {
    const packed = await packContext(p.request.context.dir, path.join(tmp, 'context.tar'), p.request.dockerignore);
    const req = toSubmit(p);
    const present = await client.hasContext(packed.digest);
    const submitted = present
      ? await client.submit({ ...req, context_digest: packed.digest })
      : await client.submit(req, createReadStream(packed.file));
    buildId = submitted.buildId;
    let last = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        for await (const ev of client.watch(buildId, last, abort.signal)) {
          // The server never repeats a seq; the guard keeps a buggy proxy from making us print twice.
          if (ev.seq <= last) continue;
          last = ev.seq;
          renderer.event(withServer(ev, p.server));
          if (ev.type === 'result') result = ev.result;
          if (ev.type === 'error') error = ev.error;
        }
        break;
      } catch (err) {
        if (abort.signal.aborted || attempt >= WATCH_RETRIES || !isTransient(err as BuildliteError)) throw err;
        await new Promise((r) => setTimeout(r, Math.min(250 * 2 ** attempt, 5000)));
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    renderer.close();
    client.close();
    await rm(tmp, { recursive: true, force: true });
  }
  if (error || !result) return 1;
  if (p.iidfile) await writeFile(p.iidfile, result.imageDigest);
  if (p.metadataFile) {
    const { metadataOf } = await import('./local-build.js');
    await writeFile(p.metadataFile, `${JSON.stringify(metadataOf(p, result), null, 2)}\n`);
  }
  if (p.progress === 'quiet') process.stdout.write(`${result.imageDigest}\n`);
  return 0;
}

/** Log hints from the worker name the server as a placeholder; this client knows the address it used. */
function withServer(ev: BuildEvent, server: string): BuildEvent {
  const hint = `--server ${SERVER_PLACEHOLDER}`;
  if (ev.type === 'log' && ev.data.includes(hint)) return { ...ev, data: ev.data.replace(hint, `--server ${server}`) };
  if (ev.type === 'warning' && ev.message.includes(hint)) return { ...ev, message: ev.message.replace(hint, `--server ${server}`) };
  return ev;
}

/** A dropped connection or a restarting server, not an answer: resume the stream. */
function isTransient(err: BuildliteError): boolean {
  return err.retryable || err.code === 'INTERNAL';
}

/** The parsed flags as a proto BuildRequest (secrets with their values: they travel only in this call). */
export function toSubmit(p: ParsedBuild): SubmitRequest {
  const r = p.request;
  return {
    dockerfile: r.dockerfile,
    dockerfile_name: r.dockerfileName ?? 'Dockerfile',
    dockerignore: r.dockerignore ?? '',
    build_args: Object.entries(r.buildArgs ?? {}).map(([key, value]) => ({ key, value })),
    target: r.target ?? '',
    labels: Object.entries(r.labels ?? {}).map(([key, value]) => ({ key, value })),
    outputs: (r.outputs ?? []).flatMap((o) => (o.type === 'registry' || o.type === 'image' ? [{ type: o.type, refs: [...o.refs] }] : [])),
    no_cache: r.noCache ?? false,
    no_cache_filter: [...(r.noCacheFilter ?? [])],
    network: r.network ?? 'default',
    allow: [...(r.allow ?? [])],
    ...(r.platform ? { platform: { os: r.platform.os, architecture: r.platform.architecture, variant: r.platform.variant ?? '' } } : {}),
    secrets: [...p.secrets].map(([id, value]) => ({ id, value })),
    ...(r.sourceDateEpoch !== undefined ? { source_date_epoch: r.sourceDateEpoch, has_source_date_epoch: true } : {}),
  };
}

export interface PackedContext {
  readonly file: string;
  readonly digest: string;
  readonly size: number;
  readonly entries: number;
  readonly skipped: readonly string[];
}

/**
 * Packs a context directory into a tar file for upload (THREATS.md 4):
 * symlinks go as symlinks (their targets are never read), files excluded by
 * the .dockerignore (or the Dockerfile-specific one, which wins) are not read
 * or sent, and sockets, FIFOs and devices are skipped. Entries are sorted and
 * owners zeroed, so an unchanged directory packs to the same digest and the
 * server can skip the upload.
 */
export async function packContext(dir: string, dest: string, dockerignore?: string): Promise<PackedContext> {
  const ignoreText = dockerignore ?? (await readFile(path.join(dir, '.dockerignore'), 'utf8').catch(() => ''));
  const matcher = new PathMatcher(parseIgnoreFile(ignoreText));
  const pack = tarPack();
  const hash = createHash('sha256');
  let size = 0;
  const skipped: string[] = [];
  let entries = 0;
  const out = createWriteStream(dest, { mode: 0o600 });
  // A second 'data' listener beside pipeline's: it sees every chunk, and backpressure still pauses both.
  pack.on('data', (data: unknown) => {
    const chunk = data as Buffer;
    hash.update(chunk);
    size += chunk.length;
  });
  const written = pipeline(pack, out);

  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(path.join(dir, rel))).sort();
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = path.join(dir, r);
      const st = await lstat(abs);
      const ignored = r !== '.dockerignore' && !matcher.empty && matcher.matches(r);
      if (st.isDirectory()) {
        // With `!` re-inclusions, something below an ignored dir may still be wanted.
        if (ignored && !matcher.hasExclusions) continue;
        if (!ignored) {
          await entry(pack, { name: `${r}/`, type: 'directory', mode: st.mode & 0o7777, mtime: st.mtime });
          entries++;
        }
        await walk(r);
        continue;
      }
      if (ignored) continue;
      if (st.isSymbolicLink()) {
        await entry(pack, { name: r, type: 'symlink', linkname: await readlink(abs), mode: 0o777, mtime: st.mtime });
      } else if (st.isFile()) {
        await entry(pack, { name: r, type: 'file', size: st.size, mode: st.mode & 0o7777, mtime: st.mtime }, abs);
      } else {
        skipped.push(r);
        continue;
      }
      entries++;
    }
  };
  try {
    await walk('');
    pack.finalize();
    await written;
  } catch (err) {
    pack.destroy(err as Error);
    await written.catch(() => undefined);
    throw err;
  }
  return { file: dest, digest: `sha256:${hash.digest('hex')}`, size, entries, skipped };
}

interface Header {
  name: string;
  type: 'file' | 'directory' | 'symlink';
  mode: number;
  mtime: Date;
  size?: number;
  linkname?: string;
}

function entry(pack: Pack, h: Header, file?: string): Promise<void> {
  const header = { ...h, uid: 0, gid: 0, uname: '', gname: '' };
  return new Promise((resolve, reject) => {
    if (!file) {
      pack.entry(header, (err) => (err ? reject(err) : resolve()));
      return;
    }
    const sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
    // A file that changes size while packed fails the entry (tar-stream checks the size) rather than sending a torn tar.
    pipeline(createReadStream(file), sink).catch(reject);
  });
}
