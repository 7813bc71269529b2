/**
 * The sandbox security tests that apply (docs/security.md T1, T5, T11), run
 * again rootless: as an unprivileged user, inside the user namespace the CLI
 * makes for itself (cli/userns-exec.ts: 0 -> the user, 1..65536 -> its
 * subordinate ids, a mount namespace of its own), where the builder runs
 * exactly as the CLI's inner process runs it. Left out: the fork-bomb test,
 * which asserts the pids cgroup's LIMIT_EXCEEDED, a cgroup a rootless builder
 * does not have here (test/rootless/build.test.ts holds the rootless bound).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subordinateIds } from '../../cli/subids.js';
import { unshareArgs } from '../../cli/userns-exec.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { createRootlessUser, type RootlessUser } from '../helpers/rootless-user.js';

const SUITES = ['test/security/sandbox-build.test.ts', 'test/security/secrets-build.test.ts'];

describe('security tests, rootless', () => {
  let user: RootlessUser;
  let inNamespace: (command: readonly string[]) => ReturnType<RootlessUser['run']>;

  beforeAll(async () => {
    user = await createRootlessUser();
    await user.provision();
    const { uids, gids } = subordinateIds({ name: user.name, uid: user.uid, gid: user.gid });
    inNamespace = (command) => user.run('unshare', unshareArgs(uids, gids, command), { cwd: REPO_ROOT, env: { NO_COLOR: '1', FORCE_COLOR: '0' } });
  });
  afterAll(async () => {
    await user?.remove();
  });

  it('the namespace maps 0 to the user and 1..65536 to its subordinate ids', async () => {
    const r = await inNamespace(['cat', '/proc/self/uid_map', '/proc/self/gid_map']);
    expect(r.code, r.stderr).toBe(0);
    const { uids, gids } = subordinateIds({ name: user.name, uid: user.uid, gid: user.gid });
    const lines = r.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number));
    expect(lines).toEqual([
      [0, user.uid, 1],
      [1, uids.start, 65536],
      [0, user.gid, 1],
      [1, gids.start, 65536],
    ]);
  });

  it('no host files, processes or network; mount and unshare denied; secrets in no layer; a private state root: all hold rootless', async () => {
    // --configLoader runner: vitest reads its config without writing beside it (the checkout is root's).
    const r = await inNamespace([process.execPath, 'node_modules/vitest/vitest.mjs', 'run', '--configLoader', 'runner', '-t', '^(?!.*fork bomb)', ...SUITES]);
    const summary = r.stdout.slice(r.stdout.lastIndexOf('Test Files'));
    expect(r.code, `${r.stdout.slice(-4000)}\n${r.stderr.slice(-2000)}`).toBe(0);
    expect(summary).toMatch(/Test Files\s+2 passed \(2\)/);
    expect(summary).toMatch(/Tests\s+7 passed \| 1 skipped \(8\)/);
  });
});
