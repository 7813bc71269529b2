import { chmod, chown, copyFile, lutimes, mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Debian's busybox-static; the one host binary every sandbox and image test builds on. */
export const BUSYBOX_PATH = process.env.BUILDLITE_BUSYBOX ?? '/bin/busybox';

/** Applets linked in /bin; enough for the shell scripts tests write. */
export const BUSYBOX_APPLETS = [
  'sh', 'ash', 'ls', 'cat', 'echo', 'mkdir', 'chmod', 'chown', 'chgrp', 'id', 'stat', 'sha256sum', 'md5sum',
  'tar', 'gzip', 'gunzip', 'zcat', 'sed', 'env', 'touch', 'ln', 'rm', 'rmdir', 'cp', 'mv', 'find', 'wc',
  'printf', 'test', '[', 'true', 'false', 'sleep', 'grep', 'head', 'tail', 'cut', 'sort', 'uniq', 'tr',
  'xargs', 'basename', 'dirname', 'readlink', 'realpath', 'whoami', 'date', 'expr', 'seq', 'mktemp', 'tee',
  'du', 'uname', 'pwd', 'which', 'od', 'mkfifo', 'hostname', 'awk', 'diff', 'cmp', 'truncate', 'mount',
  'umount', 'unshare', 'kill', 'ps', 'ip', 'su',
] as const;

export const BUSYBOX_PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  'app:x:1000:1000:app:/home/app:/bin/sh',
  'nobody:x:65534:65534:nobody:/nonexistent:/bin/false',
  '',
].join('\n');

export const BUSYBOX_GROUP = [
  'root:x:0:',
  'staff:x:50:app',
  'app:x:1000:',
  'nobody:x:65534:',
  '',
].join('\n');

/** 2024-01-01T00:00:00Z: every entry gets this mtime so two rootfs trees are identical. */
export const BUSYBOX_MTIME = new Date('2024-01-01T00:00:00Z');

/**
 * Write a tiny busybox rootfs into `dir` (created if missing): /bin/busybox,
 * applet links, /usr/bin/env, users root/app/nobody, groups root/staff/app/nobody,
 * the usual top-level dirs with their modes, empty /etc/hosts, /etc/hostname
 * and /etc/resolv.conf. Reproducible: fixed owners, modes and mtimes.
 */
export async function makeBusyboxRootfs(dir: string, busybox: string = BUSYBOX_PATH): Promise<void> {
  const root = path.resolve(dir);
  const dirs: Array<[string, number, number?]> = [
    ['', 0o755],
    ['bin', 0o755],
    ['usr', 0o755],
    ['usr/bin', 0o755],
    ['etc', 0o755],
    ['home', 0o755],
    ['home/app', 0o755, 1000],
    ['tmp', 0o1777],
    ['root', 0o700],
    ['proc', 0o555],
    ['sys', 0o555],
    ['dev', 0o755],
    ['run', 0o755],
    ['var', 0o755],
  ];
  for (const [rel, mode, owner] of dirs) {
    const p = path.join(root, rel);
    await mkdir(p, { recursive: true });
    await chmod(p, mode);
    await chown(p, owner ?? 0, owner ?? 0);
  }
  await copyFile(busybox, path.join(root, 'bin/busybox'));
  await chmod(path.join(root, 'bin/busybox'), 0o755);
  for (const applet of BUSYBOX_APPLETS) await symlink('busybox', path.join(root, 'bin', applet));
  await symlink('/bin/busybox', path.join(root, 'usr/bin/env'));
  const files: Array<[string, string]> = [
    ['etc/passwd', BUSYBOX_PASSWD],
    ['etc/group', BUSYBOX_GROUP],
    ['etc/hosts', ''],
    ['etc/hostname', ''],
    ['etc/resolv.conf', ''],
  ];
  for (const [rel, text] of files) {
    const p = path.join(root, rel);
    await writeFile(p, text, { mode: 0o644 });
    await chmod(p, 0o644);
  }
  await touchTree(root);
}

/** Children before parents, so setting a child's time does not bump its dir's mtime afterwards. */
async function touchTree(p: string): Promise<void> {
  const entries = await readdir(p, { withFileTypes: true });
  for (const e of entries) {
    const child = path.join(p, e.name);
    if (e.isDirectory()) await touchTree(child);
    else await lutimes(child, BUSYBOX_MTIME, BUSYBOX_MTIME);
  }
  await lutimes(p, BUSYBOX_MTIME, BUSYBOX_MTIME);
}
