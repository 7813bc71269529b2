import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUSYBOX_GROUP, BUSYBOX_PASSWD } from '../../test/helpers/busybox-rootfs.js';
import { parseGroup, parsePasswd, resolveChown, resolveChownIn, resolveUser, resolveUserIn } from './user.js';

const passwd = parsePasswd(BUSYBOX_PASSWD);
const groups = parseGroup(`${BUSYBOX_GROUP}wheel:x:10:root,app\n# comment\nbroken-line\n`);

describe('parsePasswd / parseGroup', () => {
  it('parses entries and skips malformed lines', () => {
    expect(parsePasswd('a:x:1:2:A:/h:/bin/sh\nbad\nb:x:notnum:1::/:\n#c:x:3:3::/:\n')).toEqual([
      { name: 'a', uid: 1, gid: 2, home: '/h', shell: '/bin/sh' },
    ]);
    expect(groups.find((g) => g.name === 'wheel')).toEqual({ name: 'wheel', gid: 10, members: ['root', 'app'] });
    expect(groups.some((g) => g.name === 'broken-line')).toBe(false);
  });
});

describe('resolveUserIn (USER)', () => {
  it.each([
    ['', { uid: 0, gid: 0, additionalGids: [10] }],
    ['root', { uid: 0, gid: 0, additionalGids: [10] }],
    ['app', { uid: 1000, gid: 1000, additionalGids: [50, 10] }],
    ['1000', { uid: 1000, gid: 1000, additionalGids: [50, 10] }],
    ['app:staff', { uid: 1000, gid: 50, additionalGids: [] }],
    ['app:65534', { uid: 1000, gid: 65534, additionalGids: [] }],
    ['1000:1000', { uid: 1000, gid: 1000, additionalGids: [] }],
    ['4242', { uid: 4242, gid: 0, additionalGids: [] }],
    ['4242:77', { uid: 4242, gid: 77, additionalGids: [] }],
    ['nobody', { uid: 65534, gid: 65534, additionalGids: [] }],
  ])('%j', (spec, want) => {
    expect(resolveUserIn(spec, passwd, groups)).toEqual(want);
  });

  it.each([['ghost'], ['app:ghosts'], ['app:'], ['99999999999']])('rejects %j', (spec) => {
    expect(() => resolveUserIn(spec, passwd, groups)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

describe('resolveChownIn (COPY --chown)', () => {
  it.each([
    ['app', { uid: 1000, gid: 1000 }],
    ['1234', { uid: 1234, gid: 1234 }],
    ['app:staff', { uid: 1000, gid: 50 }],
    ['10:11', { uid: 10, gid: 11 }],
    ['nobody:0', { uid: 65534, gid: 0 }],
  ])('%j', (spec, want) => {
    expect(resolveChownIn(spec, passwd, groups)).toEqual(want);
  });
  it('rejects unknown names', () => {
    expect(() => resolveChownIn('ghost', passwd, groups)).toThrow(/unable to find user ghost/);
    expect(() => resolveChownIn('app:ghosts', passwd, groups)).toThrow(/unable to find group ghosts/);
  });
});

describe('resolveUser reads the rootfs safely', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'bl-user-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function rootfs(name: string): Promise<string> {
    const r = path.join(dir, name);
    await mkdir(path.join(r, 'etc'), { recursive: true });
    return r;
  }

  it('reads /etc/passwd and /etc/group of the rootfs', async () => {
    const r = await rootfs('plain');
    await writeFile(path.join(r, 'etc/passwd'), BUSYBOX_PASSWD);
    await writeFile(path.join(r, 'etc/group'), BUSYBOX_GROUP);
    expect(await resolveUser(r, 'app')).toEqual({ uid: 1000, gid: 1000, additionalGids: [50] });
    expect(await resolveChown(r, 'app:staff')).toEqual({ uid: 1000, gid: 50 });
  });

  it('never follows an absolute symlink out of the rootfs', async () => {
    const r = await rootfs('escape');
    const hostEtc = path.join(dir, 'host-etc');
    await mkdir(hostEtc, { recursive: true });
    await writeFile(path.join(hostEtc, 'passwd'), 'evil:x:0:0::/:/bin/sh\n');
    // An image whose /etc/passwd points at the host's file by absolute path: resolved inside the rootfs, it does not exist.
    await symlink(path.join(hostEtc, 'passwd'), path.join(r, 'etc/passwd'));
    await expect(resolveUser(r, 'evil')).rejects.toThrow(/unable to find user evil/);
    await symlink('../../../host-etc/passwd', path.join(r, 'etc/group'));
    expect(await resolveUser(r, '5')).toEqual({ uid: 5, gid: 0, additionalGids: [] });
  });

  it('follows a symlink that stays inside the rootfs', async () => {
    const r = await rootfs('inside');
    await writeFile(path.join(r, 'etc/passwd.real'), BUSYBOX_PASSWD);
    await symlink('/etc/passwd.real', path.join(r, 'etc/passwd'));
    expect((await resolveUser(r, 'app')).uid).toBe(1000);
  });

  it('refuses a FIFO or a directory instead of hanging or reading it', async () => {
    const r = await rootfs('fifo');
    execFileSync('mkfifo', [path.join(r, 'etc/passwd')]);
    await expect(resolveUser(r, 'app')).rejects.toThrow(/not a regular file/);
    const r2 = await rootfs('dir');
    await mkdir(path.join(r2, 'etc/group'));
    await expect(resolveUser(r2, 'root')).rejects.toThrow(/not a regular file/);
  });

  it('refuses a huge account file', async () => {
    const r = await rootfs('huge');
    await writeFile(path.join(r, 'etc/passwd'), Buffer.alloc(5 * 1024 * 1024, 0x61));
    await expect(resolveUser(r, 'app')).rejects.toThrow(/larger than/);
  });

  it('treats missing account files as empty: numeric users work, names do not', async () => {
    const r = await rootfs('empty');
    expect(await resolveUser(r, '')).toEqual({ uid: 0, gid: 0, additionalGids: [] });
    expect(await resolveUser(r, '1000:1000')).toEqual({ uid: 1000, gid: 1000, additionalGids: [] });
    await expect(resolveUser(r, 'app')).rejects.toThrow(/unable to find user app/);
  });
});
