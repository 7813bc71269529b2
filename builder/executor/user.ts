import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from 'node:fs';
import { BuildliteError, type ErrorCode } from '../../core/errors.js';
import { resolveInRoot } from '../../core/safe-path.js';

/** A USER or --chown that names nobody the image knows, or a bad id. */
export class UserError extends BuildliteError {
  readonly code: ErrorCode = 'INVALID_ARGUMENT';
  constructor(
    message: string,
    readonly spec: string,
  ) {
    super(message);
  }
  override details() {
    return { user: this.spec };
  }
}

export interface PasswdEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  readonly shell: string;
}

export interface GroupEntry {
  readonly name: string;
  readonly gid: number;
  readonly members: readonly string[];
}

export interface ResolvedUser {
  readonly uid: number;
  readonly gid: number;
  readonly additionalGids: number[];
}

/** passwd and group files of real images are a few KiB; past this we stop rather than buffer. */
const MAX_ACCOUNT_FILE_BYTES = 4 * 1024 * 1024;
const MAX_ID = 0xffff_fffe; // 2^32-1 is the kernel's "no id" (-1)

/** Lines of /etc/passwd; malformed lines are skipped, as libc does. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    const uid = parseId(f[2]);
    const gid = parseId(f[3]);
    if (f[0] === undefined || f[0] === '' || uid === undefined || gid === undefined) continue;
    out.push({ name: f[0], uid, gid, home: f[5] ?? '', shell: f[6] ?? '' });
  }
  return out;
}

/** Lines of /etc/group; malformed lines are skipped. */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    const gid = parseId(f[2]);
    if (f[0] === undefined || f[0] === '' || gid === undefined) continue;
    const members = (f[3] ?? '').split(',').map((m) => m.trim()).filter((m) => m.length > 0);
    out.push({ name: f[0], gid, members });
  }
  return out;
}

function parseId(s: string | undefined): number | undefined {
  if (s === undefined || !/^\d{1,10}$/.test(s.trim())) return undefined;
  const n = Number(s.trim());
  return n <= MAX_ID ? n : undefined;
}

/**
 * Pure resolution of a USER spec against parsed account files, with
 * runc/moby's rules: a name must exist; a numeric uid need not (gid 0 then);
 * an explicit group replaces the primary gid and drops the supplementary
 * groups; otherwise the supplementary groups are those listing the user.
 */
export function resolveUserIn(userSpec: string, passwd: readonly PasswdEntry[], groups: readonly GroupEntry[]): ResolvedUser {
  const spec = userSpec.trim();
  const [userPart = '', groupPart] = splitOnce(spec);
  let uid = 0;
  let gid = 0;
  let name: string | undefined;
  if (userPart === '') {
    const root = passwd.find((p) => p.uid === 0);
    name = root?.name;
    gid = root?.gid ?? 0;
  } else {
    const numeric = parseId(userPart);
    const entry = numeric !== undefined ? passwd.find((p) => p.uid === numeric) : passwd.find((p) => p.name === userPart);
    if (entry) {
      uid = entry.uid;
      gid = entry.gid;
      name = entry.name;
    } else if (numeric !== undefined) {
      uid = numeric;
    } else {
      throw new UserError(`unable to find user ${userPart}: no matching entries in passwd file`, spec);
    }
  }
  if (groupPart !== undefined) {
    if (groupPart === '') throw new UserError(`invalid user spec ${JSON.stringify(spec)}: empty group`, spec);
    gid = lookupGroup(groupPart, groups, spec);
    return { uid, gid, additionalGids: [] };
  }
  const additionalGids = name === undefined ? [] : groups.filter((g) => g.members.includes(name)).map((g) => g.gid);
  return { uid, gid, additionalGids: [...new Set(additionalGids)] };
}

/**
 * COPY/ADD --chown, with BuildKit's rules (they differ from USER): a numeric
 * user without a group also uses its uid as gid; a name takes its passwd gid.
 */
export function resolveChownIn(chownSpec: string, passwd: readonly PasswdEntry[], groups: readonly GroupEntry[]): { uid: number; gid: number } {
  const spec = chownSpec.trim();
  const [userPart = '', groupPart] = splitOnce(spec);
  if (userPart === '') throw new UserError(`invalid --chown ${JSON.stringify(spec)}: empty user`, spec);
  let uid: number;
  let gid: number;
  const numeric = parseId(userPart);
  if (numeric !== undefined) {
    uid = numeric;
    gid = numeric;
  } else {
    const entry = passwd.find((p) => p.name === userPart);
    if (!entry) throw new UserError(`unable to find user ${userPart}: no matching entries in passwd file`, spec);
    uid = entry.uid;
    gid = entry.gid;
  }
  if (groupPart !== undefined) {
    if (groupPart === '') throw new UserError(`invalid --chown ${JSON.stringify(spec)}: empty group`, spec);
    gid = lookupGroup(groupPart, groups, spec);
  }
  return { uid, gid };
}

function lookupGroup(groupPart: string, groups: readonly GroupEntry[], spec: string): number {
  const numeric = parseId(groupPart);
  if (numeric !== undefined) return numeric;
  const entry = groups.find((g) => g.name === groupPart);
  if (!entry) throw new UserError(`unable to find group ${groupPart}: no matching entries in group file`, spec);
  return entry.gid;
}

function splitOnce(spec: string): [string, string | undefined] {
  const i = spec.indexOf(':');
  return i < 0 ? [spec, undefined] : [spec.slice(0, i), spec.slice(i + 1)];
}

/** Resolve a USER spec against the rootfs's own /etc/passwd and /etc/group. */
export async function resolveUser(rootfsDir: string, userSpec: string): Promise<ResolvedUser> {
  const [passwd, group] = await Promise.all([readAccountFile(rootfsDir, '/etc/passwd'), readAccountFile(rootfsDir, '/etc/group')]);
  return resolveUserIn(userSpec, parsePasswd(passwd), parseGroup(group));
}

/** Resolve a COPY/ADD --chown spec against the destination rootfs's account files. */
export async function resolveChown(rootfsDir: string, chownSpec: string): Promise<{ uid: number; gid: number }> {
  const [passwd, group] = await Promise.all([readAccountFile(rootfsDir, '/etc/passwd'), readAccountFile(rootfsDir, '/etc/group')]);
  return resolveChownIn(chownSpec, parsePasswd(passwd), parseGroup(group));
}

/**
 * Read an account file of an untrusted image: resolved inside the rootfs,
 * opened without following a last link and without blocking (a FIFO must not
 * hang us), accepted only as a regular file, and read up to a cap. A missing
 * file reads as empty, as libc treats it.
 */
export async function readAccountFile(rootfsDir: string, inImagePath: string): Promise<string> {
  const hostPath = await resolveInRoot(rootfsDir, inImagePath);
  // Synchronous calls: two small files per step, where each await cost more than the read.
  // lstat first: opening a device node can have effects of its own, so only a
  // regular file is ever opened; the fstat below catches a swap in between.
  let pre;
  try {
    pre = lstatSync(hostPath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return '';
    throw err;
  }
  if (!pre.isFile()) throw new UserError(`${inImagePath} in the image is not a regular file`, inImagePath);
  let fd: number;
  try {
    fd = openSync(hostPath, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return '';
    if (code === 'ELOOP') throw new UserError(`${inImagePath} in the image is a dangling or looping symlink`, inImagePath);
    throw err;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.ino !== pre.ino || st.dev !== pre.dev) throw new UserError(`${inImagePath} in the image is not a regular file`, inImagePath);
    if (st.size > MAX_ACCOUNT_FILE_BYTES) throw new UserError(`${inImagePath} in the image is larger than ${MAX_ACCOUNT_FILE_BYTES} bytes`, inImagePath);
    const buf = Buffer.alloc(Math.min(st.size, MAX_ACCOUNT_FILE_BYTES));
    const bytesRead = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    closeSync(fd);
  }
}
