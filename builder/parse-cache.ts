import { createHash } from 'node:crypto';
import { readdir, readFile, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { deserialize, serialize } from 'node:v8';
import { atomicWriteFile } from '../core/fs-util.js';
import { parseDockerfile, type ParsedDockerfile } from './dockerfile/index.js';

/** Parses kept; a Dockerfile's is a few KB. */
const MAX_ENTRIES = 64;
const DIGEST_BYTES = 32;

/**
 * Dockerfile text → its parse, kept on disk between processes. Parsing is
 * pure, but in a fresh process it is the first run of dockerfile-ast's code:
 * 6-9 ms for a 17-line file, against 0.35 ms once warm, and ~14 ms of a fully
 * cached build's ~145 ms end to end (bench/results/2026-12-07-issue18-pass11.md).
 *
 * A parse is only as right as the code that made it, so entries are keyed by
 * `codeId`, which names the code this process runs (the CLI bundle's content
 * hash), and by Node's version (the serialization's). Without a codeId
 * nothing is kept: a process that cannot say which code it runs parses every
 * time. Each file carries the sha256 of what follows it, so a torn or
 * damaged entry is parsed again, never used. A Dockerfile that does not parse
 * is not kept: its error is made again each time.
 */
export class ParseCache {
  constructor(
    private readonly dir: string,
    private readonly codeId: string | undefined,
    private readonly parse: (text: string, fileName: string) => ParsedDockerfile = parseDockerfile,
  ) {}

  async get(text: string, fileName: string): Promise<ParsedDockerfile> {
    if (this.codeId === undefined) return this.parse(text, fileName);
    const file = path.join(this.dir, this.keyOf(text, fileName));
    const kept = await this.read(file);
    if (kept) return kept;
    const parsed = this.parse(text, fileName);
    await this.write(file, parsed).catch(() => undefined);
    return parsed;
  }

  private keyOf(text: string, fileName: string): string {
    return createHash('sha256').update(JSON.stringify([this.codeId, process.version, fileName, text])).digest('hex');
  }

  private async read(file: string): Promise<ParsedDockerfile | undefined> {
    try {
      const bytes = await readFile(file);
      const body = bytes.subarray(DIGEST_BYTES);
      if (bytes.length <= DIGEST_BYTES || !createHash('sha256').update(body).digest().equals(bytes.subarray(0, DIGEST_BYTES))) return undefined;
      const value = deserialize(body) as ParsedDockerfile;
      return Array.isArray(value?.instructions) && value.checkText?.comments instanceof Map ? value : undefined;
    } catch {
      return undefined;
    }
  }

  /** Not fsynced: an entry lost in a crash is a parse next time. */
  private async write(file: string, parsed: ParsedDockerfile): Promise<void> {
    const body = serialize(parsed);
    await atomicWriteFile(file, Buffer.concat([createHash('sha256').update(body).digest(), body]), 0o600, { durable: false });
    const names = (await readdir(this.dir)).filter((n) => /^[0-9a-f]{64}$/.test(n));
    if (names.length <= MAX_ENTRIES) return;
    const aged = await Promise.all(names.map(async (n) => ({ file: path.join(this.dir, n), mtime: (await stat(path.join(this.dir, n)).catch(() => undefined))?.mtimeMs ?? 0 })));
    aged.sort((a, b) => b.mtime - a.mtime);
    await Promise.all(aged.slice(MAX_ENTRIES).map((e) => unlink(e.file).catch(() => undefined)));
  }
}
