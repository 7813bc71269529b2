import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runOnHost } from './host-commands.js';

/**
 * Makes `dir` (recursively, `mode` for what it creates) as the parent of
 * whole trees that come and go: snapshots, unpacked contexts, cache mounts.
 * On ext4 it also sets the TOPDIR attribute (`chattr +T`), so that the
 * allocator places each new subdirectory, with the files made in it, in a
 * block group of its own choosing instead of in `dir`'s own group.
 *
 * Why: on ext4 without a journal (the benchmark machine's root filesystem is one)
 * allocating an inode skips every free inode of its group that was freed in
 * the last minutes, reading each one's inode, and does so again for every
 * new inode. So a tree unpacked beside one just deleted costs time that grows
 * with both: untarring the debian base (4,930 files) right after deleting a
 * copy of it took 4.0-4.6 s, nearly all in the kernel, and 0.2 s in a group of
 * its own (bench/results/2026-12-06-issue18-pass5.md).
 * Spread over groups, a new tree rarely shares one with a deleted tree.
 *
 * Best effort: without chattr, or on a filesystem that has no such attribute,
 * nothing changes. Whether it was tried is kept beside `dir` (`<dir>.spread`),
 * so a later process pays one failed create instead of a command; a `dir`
 * this call creates is tried again whatever the marker says.
 */
export async function makeSpreadDir(dir: string, mode = 0o700): Promise<void> {
  const made = await mkdir(dir, { recursive: true, mode });
  // 'wx' fails when the marker is there already: tried before, by this process or another.
  const unmarked = await writeFile(`${dir}.spread`, '', { mode: 0o600, flag: 'wx' }).then(
    () => true,
    () => false,
  );
  if (!unmarked && made === undefined) return;
  // Absolute, so chattr cannot read it as an option.
  await runOnHost('chattr', ['+T', path.resolve(dir)], { timeoutMs: 10_000 }).catch(() => undefined);
}
