import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSubIds, RootlessSetupError, subordinateIds } from './subids.js';

const ME = { name: 'dev', id: 1001 };

describe('parseSubIds', () => {
  it.each([
    ['by name', 'root:1:2\ndev:100000:65536\n', { start: 100000, count: 65536 }],
    ['by uid', '1001:200000:65536\n', { start: 200000, count: 65536 }],
    ['the first of several ranges', 'dev:300000:70000\ndev:100000:65536\n', { start: 300000, count: 70000 }],
    ['malformed lines skipped, as newuidmap does', 'dev:x:65536\ndev:5\n dev:400000:65536 \n', { start: 400000, count: 65536 }],
    ['another user only', 'devops:100000:65536\n', undefined],
    ['a zero count', 'dev:100000:0\n', undefined],
  ])('%s', (_name, text, want) => {
    expect(parseSubIds(text, ME)).toEqual(want);
  });
});

describe('subordinateIds', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-subids-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });
  const user = { name: 'dev', uid: 1001, gid: 1002 };
  async function files(uid: string, gid: string) {
    const f = { uid: path.join(tmp, `subuid-${Math.random()}`), gid: path.join(tmp, `subgid-${Math.random()}`) };
    await writeFile(f.uid, uid);
    await writeFile(f.gid, gid);
    return f;
  }

  it('reads the uid range by user and the gid range by name or gid', async () => {
    const f = await files('dev:100000:65536\n', '1002:300000:65536\n');
    expect(subordinateIds(user, f)).toEqual({ uids: { start: 100000, count: 65536 }, gids: { start: 300000, count: 65536 } });
  });

  it('a user without a range: the error names the file and the command that adds one', async () => {
    const f = await files('other:100000:65536\n', 'dev:100000:65536\n');
    const err = (() => {
      try {
        subordinateIds(user, f);
      } catch (e) {
        return e as Error;
      }
      throw new Error('no error');
    })();
    expect(err).toBeInstanceOf(RootlessSetupError);
    expect(err.message).toContain(`has no subordinate uid range in ${f.uid}`);
    expect(err.message).toContain('usermod --add-subuids 100000-165535 --add-subgids 100000-165535 dev');
    expect(err.message).toContain('scripts/provision.sh --rootless-user dev');
  });

  it('a missing gid file and a range too small are refused, each naming its file', async () => {
    const f = await files('dev:100000:65536\n', '');
    expect(() => subordinateIds(user, { uid: f.uid, gid: path.join(tmp, 'none') })).toThrow(`cannot read ${path.join(tmp, 'none')} (ENOENT)`);
    const small = await files('dev:100000:1000\n', 'dev:100000:65536\n');
    expect(() => subordinateIds(user, small)).toThrow(`holds 1000 ids, fewer than the 65536`);
  });
});
