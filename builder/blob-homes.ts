import { appendFile, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Digest } from '../core/digest.js';
import { onceUntilDone } from '../core/retry-once.js';
import type { BlobHomes } from '../registry-client/index.js';

/** Repositories remembered per blob and registry; a blob lives in a few at most (its base, our pushes). */
const MAX_HOMES = 8;
/** What a homes file may hold before it is no longer read or grown (a line is ~100 bytes). */
const MAX_FILE_BYTES = 16 << 10;
// Registry names and repositories as the reference parser accepts them; anything else in a file is not ours.
const LINE = /^([A-Za-z0-9.\-[\]:]{1,255}) ([a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)$/;

/**
 * Which repositories of a registry hold a blob, kept in the state root
 * (`blob-homes/sha256-<hex>`, one `registry repository` line each), so that
 * `buildlite push` in a later process mounts a base image's layers from the
 * repository they were pulled from, as buildah's blob-info cache lets it do,
 * instead of uploading them. A record is a hint: the registry decides, and a
 * refused mount becomes an upload. Appends are queued and awaited by `flush`.
 */
export class FileBlobHomes implements BlobHomes {
  private readonly pending = new Set<Promise<void>>();
  private readonly makeDir = onceUntilDone(async () => {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  });

  constructor(private readonly dir: string) {}

  record(registry: string, repository: string, digest: Digest): void {
    const line = `${registry} ${repository}`;
    if (!LINE.test(line)) return;
    const p = this.append(digest, line).catch(() => undefined);
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  async lookup(registry: string, digest: Digest): Promise<readonly string[]> {
    const repos: string[] = [];
    for (const l of await this.lines(digest)) {
      const m = LINE.exec(l);
      if (m && m[1] === registry && !repos.includes(m[2]!)) repos.push(m[2]!);
    }
    return repos.slice(0, MAX_HOMES);
  }

  /** Waits for the records in flight (a process that exits right after a pull keeps them). */
  async flush(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
  }

  private file(digest: Digest): string {
    return path.join(this.dir, digest.replace(':', '-'));
  }

  private async lines(digest: Digest): Promise<string[]> {
    try {
      const text = await readFile(this.file(digest), 'utf8');
      return text.length > MAX_FILE_BYTES ? [] : text.split('\n').filter(Boolean);
    } catch {
      return [];
    }
  }

  private async append(digest: Digest, line: string): Promise<void> {
    const have = await this.lines(digest);
    if (have.includes(line) || have.length >= MAX_HOMES) return;
    await this.makeDir();
    // One short O_APPEND write: two processes recording at once interleave whole lines.
    await appendFile(this.file(digest), `${line}\n`, { mode: 0o600 });
  }
}
