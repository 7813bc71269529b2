import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { limitExceeded } from '../core/limit-error.js';
import type { BuildLimits } from '../core/limits.js';
import { extractTar } from '../builder/index.js';
import { UsageError } from './usage.js';

/** How much of stdin is looked at to tell a tar (or compressed tar) from a bare Dockerfile. */
const SNIFF_BYTES = 512;

export interface StdinContext {
  readonly dir: string;
  /** True when stdin was a Dockerfile, not a tar: the context is empty. */
  readonly dockerfileOnly: boolean;
  remove(): Promise<void>;
}

/**
 * CONTEXT `-`: stdin is a tar (plain, gzip, bzip2 or xz) of the context,
 * extracted with the same safety as image layers (no `..`, no absolute names,
 * no writes through symlinks) into a private temp dir; or, as with
 * `docker build - < Dockerfile`, a bare Dockerfile and an empty context.
 * The caller removes the dir with `remove()` when the build is over.
 *
 * Bounded by the context size limit (the tar as extracted: a small gzip may
 * hold a huge tar) and a bare Dockerfile by the Dockerfile size limit; past
 * either, nothing of it stays.
 */
export async function readStdinContext(
  tmpRoot: string,
  limits: Pick<BuildLimits, 'maxContextBytes' | 'maxDockerfileBytes'>,
  input: NodeJS.ReadableStream = process.stdin,
  signal?: AbortSignal,
): Promise<StdinContext> {
  await mkdir(tmpRoot, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(path.join(tmpRoot, 'stdin-context-'));
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    const it = (input as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    const head: Buffer[] = [];
    let headLen = 0;
    let done = false;
    while (headLen < SNIFF_BYTES) {
      const r = await it.next();
      if (r.done) {
        done = true;
        break;
      }
      const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
      head.push(b);
      headLen += b.length;
    }
    const first = Buffer.concat(head);
    if (first.length === 0) throw new UsageError('stdin is empty: pipe a tar of the context (or a Dockerfile) into "buildlite build -"', 'build');
    if (!looksLikeArchive(first)) {
      // The whole of stdin is a Dockerfile; read the rest (Dockerfiles are small, but bound it anyway).
      const rest: Buffer[] = [first];
      let n = first.length;
      for (;;) {
        if (n > limits.maxDockerfileBytes) throw limitExceeded('maxDockerfileBytes', limits.maxDockerfileBytes, 'the Dockerfile on stdin');
        if (done) break;
        const r = await it.next();
        if (r.done) break;
        n += r.value.length;
        rest.push(Buffer.from(r.value));
      }
      await writeFile(path.join(dir, 'Dockerfile'), Buffer.concat(rest), { mode: 0o644 });
      return { dir, dockerfileOnly: true, remove };
    }
    const replay = Readable.from(
      (async function* () {
        yield first;
        if (done) return;
        for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
      })(),
    );
    await extractTar(replay, dir, {
      whiteouts: false,
      limits: { maxBytes: limits.maxContextBytes, tooLarge: (max) => limitExceeded('maxContextBytes', max, 'the context on stdin', ' (as extracted)') },
      ...(signal ? { signal } : {}),
    });
    return { dir, dockerfileOnly: false, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}

function looksLikeArchive(b: Buffer): boolean {
  if (b[0] === 0x1f && b[1] === 0x8b) return true; // gzip
  if (b.subarray(0, 3).toString('latin1') === 'BZh') return true;
  if (b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return true; // xz
  return b.length >= 262 && b.subarray(257, 262).toString('latin1') === 'ustar';
}
