import { createHash } from 'node:crypto';
import { lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { UserSpec } from '../../builder/graph/index.js';
import type { FileOpContext } from '../../builder/solver/file-ops/index.js';

/** One entry of a flattened filesystem, shaped like the conformance suite's `expect.json` `fs` rows. */
export interface FsEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';
  mode?: string;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  linkname?: string;
  link_group?: string;
}

/** Flatten `root` the way conformance's normalize.py flattens an image (paths absolute from `root`). */
export function snapshot(root: string): FsEntry[] {
  const out: FsEntry[] = [];
  const inodes = new Map<string, string[]>();
  const walk = (dir: string, rel: string) => {
    for (const name of readdirSync(dir).sort()) {
      const host = path.join(dir, name);
      const p = `${rel}/${name}`;
      const st = lstatSync(host);
      const base = { path: p, uid: st.uid, gid: st.gid };
      const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
      if (st.isDirectory()) {
        out.push({ ...base, type: 'dir', mode });
        walk(host, p);
      } else if (st.isSymbolicLink()) {
        out.push({ ...base, type: 'symlink', linkname: readlinkSync(host) });
      } else if (st.isFile()) {
        const data = readFileSync(host);
        out.push({ ...base, type: 'file', mode, size: data.length, sha256: createHash('sha256').update(data).digest('hex') });
        if (st.nlink > 1) {
          const k = `${st.dev}:${st.ino}`;
          inodes.set(k, [...(inodes.get(k) ?? []), p]);
        }
      } else {
        const type = st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : 'socket';
        out.push({ ...base, type, mode });
      }
    }
  };
  walk(root, '');
  for (const group of inodes.values()) {
    if (group.length < 2) continue;
    const first = [...group].sort()[0]!;
    for (const e of out) if (group.includes(e.path)) e.link_group = first;
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Entries at or under any of `prefixes` (absolute in-image paths). */
export function under(entries: readonly FsEntry[], prefixes: readonly string[]): FsEntry[] {
  return entries.filter((e) => prefixes.some((p) => e.path === p || e.path.startsWith(`${p}/`)));
}

/** A fresh temp dir, removed by the returned disposer. */
export async function tempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `buildlite-${prefix}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A small account table standing in for the rootfs's /etc/passwd and /etc/group (the executor engineer owns the real one). */
const USERS: Record<string, { uid: number; gid: number }> = { root: { uid: 0, gid: 0 }, app: { uid: 1000, gid: 1000 }, nobody: { uid: 65534, gid: 65534 } };
const GROUPS: Record<string, number> = { root: 0, staff: 50, app: 1000, nobody: 65534 };

export async function testResolveChown(spec: UserSpec): Promise<{ uid: number; gid: number }> {
  const num = /^\d+$/.test(spec.user) ? Number(spec.user) : undefined;
  const u = num !== undefined ? { uid: num, gid: num } : USERS[spec.user];
  if (!u) throw new Error(`unknown user ${spec.user}`);
  if (spec.group === undefined) return u;
  const g = /^\d+$/.test(spec.group) ? Number(spec.group) : GROUPS[spec.group];
  if (g === undefined) throw new Error(`unknown group ${spec.group}`);
  return { uid: u.uid, gid: g };
}

/** A FileOpContext over plain dirs: input i reads `sources[i]`; `context` marks the context input. */
export function fileCtx(
  sources: readonly string[],
  opts: { context?: number; ignore?: readonly string[]; sourceDateEpoch?: number } = {},
): FileOpContext {
  const contextInput = opts.context ?? 0;
  return {
    sourceDir: (i) => sources[i]!,
    sourceExcludes: (i) => (i === contextInput ? (opts.ignore ?? []) : []),
    sourceKind: (i) => (i === contextInput ? 'context' : 'rootfs'),
    resolveChown: testResolveChown,
    ...(opts.sourceDateEpoch !== undefined ? { sourceDateEpoch: opts.sourceDateEpoch } : {}),
  };
}
