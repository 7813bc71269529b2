import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The attribute letters `lsattr -d` prints for a dir, or undefined where its filesystem has none. */
export function fileAttrs(dir: string): string | undefined {
  const r = spawnSync('lsattr', ['-d', dir], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split(' ')[0] : undefined;
}

/** Whether the filesystem under `under` takes ext4's TOPDIR attribute (`chattr +T`): ext4 does, tmpfs does not. */
export function takesTopdir(under = os.tmpdir()): boolean {
  const probe = mkdtempSync(path.join(under, 'topdir-probe-'));
  try {
    return spawnSync('chattr', ['+T', probe]).status === 0 && (fileAttrs(probe) ?? '').includes('T');
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}
