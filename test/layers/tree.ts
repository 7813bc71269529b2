import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';

/**
 * A comparable description of a directory tree: type, mode, owner, size,
 * content hash, link target, non-dir mtime, kept xattrs and hardlink groups.
 * Directory mtimes are left out: applying a layer through overlay touches them.
 */
export async function describeTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const inodes = new Map<number, string>();
  async function walk(dir: string, rel: string): Promise<void> {
    for (const name of (await readdir(dir)).sort()) {
      const host = path.join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(host);
      let d = `mode=${(st.mode & 0o7777).toString(8)} uid=${st.uid} gid=${st.gid}`;
      if (st.isDirectory()) {
        out[r] = `dir ${d}`;
        await walk(host, r);
        continue;
      }
      d += ` mtime=${Math.floor(st.mtimeMs / 1000)}`;
      if (st.isSymbolicLink()) out[r] = `symlink ${d} -> ${await readlink(host)}`;
      else if (st.isFile()) {
        const first = inodes.get(st.ino);
        if (st.nlink > 1 && first === undefined) inodes.set(st.ino, r);
        const sum = createHash('sha256').update(await readFile(host)).digest('hex').slice(0, 16);
        out[r] = `file ${d} size=${st.size} sha=${sum} nlink=${st.nlink}${first ? ` same-as=${first}` : ''}`;
      } else out[r] = `other ${d}`;
      const x = xattrsOf(host);
      if (x) out[r] += ` xattrs=${x}`;
    }
  }
  await walk(root, '');
  return out;
}

function xattrsOf(file: string): string {
  const text = execFileSync('getfattr', ['-h', '-d', '-m', '^(security\\.capability|user\\.)', '-e', 'hex', '--absolute-names', file], {
    encoding: 'utf8',
  });
  return text
    .split('\n')
    .filter((l) => l.includes('='))
    .sort()
    .join(',');
}
