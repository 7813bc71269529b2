import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildEvent } from '../../core/build.js';
import { git, startGitDaemon, startGitServer, type GitServer, type TestRepo } from '../helpers/git-server.js';
import { SecurityEnv, type BuildOutcome } from '../security/harness.js';

/** Loopback is refused by default (docs/security.md T7): every build here carries the developer's opt-in. */
const OPT_IN = { httpPolicy: { allowPrivate: true } } as const;

function states(out: BuildOutcome, name: RegExp): string[] {
  return out.events.flatMap((e: BuildEvent) => (e.type === 'vertex' && name.test(e.name) ? [e.state] : []));
}

describe('ADD <git url>: a git repository on loopback, served by git http-backend', () => {
  let env: SecurityEnv;
  let server: GitServer;
  let repo: TestRepo;

  beforeAll(async () => {
    env = await SecurityEnv.start();
    server = await startGitServer();
    repo = await server.repo('app', { 'top.txt': 'top\n', 'sub/b.txt': 'bee\n', 'sub/inner/c.txt': 'sea\n' });
    await repo.tag('v1');
  });
  afterAll(async () => {
    await server?.stop();
    await env?.stop();
  });

  it('a tag and a subdir; the same commit is a hit without a fetch, a new commit under the tag is a miss', async () => {
    const { builder } = await env.builder(OPT_IN);
    const dockerfile = `FROM ${env.base}\nADD ${server.url('app')}#v1:sub /src\nRUN cat /src/b.txt /src/inner/c.txt && ls -A /src | tr '\\n' ' ' && echo\n`;
    const build = () => env.build(builder, dockerfile, { request: { noCache: false } });
    try {
      const first = await build();
      expect(first.error).toBeUndefined();
      expect(first.logs).toContain('bee\nsea\n');
      // Only the subdir's content: not top.txt, not sub/ itself, no .git.
      expect(first.logs).toContain('b.txt inner \n');
      const fetchesAfterFirst = server.counts.uploadPack;
      expect(fetchesAfterFirst).toBeGreaterThan(0);

      const refsBefore = server.counts.infoRefs;
      const second = await build();
      expect(second.error).toBeUndefined();
      expect(second.result?.imageDigest).toBe(first.result?.imageDigest);
      expect(new Set(states(second, /ADD/))).toEqual(new Set(['cached']));
      expect(states(second, /RUN/)).toEqual(['cached']);
      // ls-remote asked which commit v1 is; nothing was fetched.
      expect(server.counts.infoRefs).toBeGreaterThan(refsBefore);
      expect(server.counts.uploadPack).toBe(fetchesAfterFirst);

      await repo.commit({ 'sub/b.txt': 'bee two\n' });
      await git(repo.dir, 'tag', '-f', 'v1');
      const third = await build();
      expect(third.error).toBeUndefined();
      expect(third.logs).toContain('bee two\n');
      expect(states(third, /RUN/)).toEqual(['started', 'completed']);
      expect(server.counts.uploadPack).toBeGreaterThan(fetchesAfterFirst);
    } finally {
      await builder.close();
    }
  });

  it('--keep-git-dir keeps .git, at the commit, with origin set to the remote', async () => {
    const { builder } = await env.builder(OPT_IN);
    const commit = await repo.head();
    try {
      const out = await env.build(builder, `FROM ${env.base}\nADD --keep-git-dir=true ${server.url('app')}#v1 /repo\nRUN ls -A /repo | tr '\\n' ' ' && echo && cat /repo/.git/HEAD && grep url /repo/.git/config\n`);
      expect(out.error).toBeUndefined();
      expect(out.logs).toMatch(/\.git sub top\.txt/);
      expect(out.logs).toContain(`${commit}\n`);
      expect(out.logs).toContain(`url = ${server.url('app')}`);
      // Without the flag there is no .git.
      const plain = await env.build(builder, `FROM ${env.base}\nADD ${server.url('app')}#v1 /repo\nRUN ls -A /repo | tr '\\n' ' '\n`);
      expect(plain.logs).toMatch(/^sub top\.txt $/m);
    } finally {
      await builder.close();
    }
  });

  it('--checksum: the right commit builds, a wrong one fails before fetching and names the line', async () => {
    const { builder } = await env.builder(OPT_IN);
    const commit = await repo.head();
    try {
      const ok = await env.build(builder, `FROM ${env.base}\nADD --checksum=${commit.slice(0, 12)} ${server.url('app')}#v1 /r\nRUN cat /r/top.txt\n`);
      expect(ok.error).toBeUndefined();
      const fetches = server.counts.uploadPack;
      const bad = await env.build(builder, `FROM ${env.base}\nADD --checksum=${'0'.repeat(40)} ${server.url('app')}#v1 /r\n`);
      expect(bad.error?.code).toBe('DIGEST_MISMATCH');
      expect(bad.error?.message).toContain(`the ref is commit ${commit}`);
      expect(bad.error?.message).toContain('0'.repeat(40));
      expect(bad.error?.range?.startLine).toBe(2);
      expect(server.counts.uploadPack).toBe(fetches);
    } finally {
      await builder.close();
    }
  });

  it('a commit id as the ref needs no ls-remote; a missing ref and a missing subdir are named', async () => {
    const { builder } = await env.builder(OPT_IN);
    const commit = await repo.head();
    try {
      const refs = server.counts.infoRefs;
      const byId = await env.build(builder, `FROM ${env.base}\nADD ${server.url('app')}#${commit} /r\nRUN cat /r/top.txt\n`, { request: { noCache: false } });
      expect(byId.error).toBeUndefined();
      expect(byId.logs).toContain('top\n');
      // The fetch asked for refs (git's own advertisement); the cached build asks nothing at all.
      expect(server.counts.infoRefs).toBeGreaterThan(refs);
      const seen = { ...server.counts };
      const again = await env.build(builder, `FROM ${env.base}\nADD ${server.url('app')}#${commit} /r\nRUN cat /r/top.txt\n`, { request: { noCache: false } });
      expect(new Set(states(again, /ADD/))).toEqual(new Set(['cached']));
      expect(server.counts).toEqual(seen);
      const none = await env.build(builder, `FROM ${env.base}\nADD ${server.url('app')}#no-such-tag /r\n`);
      expect(none.error?.code).toBe('NOT_FOUND');
      expect(none.error?.message).toContain('no-such-tag');
      const nodir = await env.build(builder, `FROM ${env.base}\nADD ${server.url('app')}#v1:nope /r\n`);
      expect(nodir.error?.code).toBe('NOT_FOUND');
      expect(nodir.error?.message).toMatch(/nope is not a directory/);
    } finally {
      await builder.close();
    }
  });

  it('git:// (git daemon): fetched from the checked address, cached by commit', async () => {
    await using daemon = await startGitDaemon(server.root);
    const { builder } = await env.builder(OPT_IN);
    try {
      const df = `FROM ${env.base}\nADD ${daemon.url('app')}#v1:sub /src\nRUN cat /src/b.txt\n`;
      const out = await env.build(builder, df, { request: { noCache: false } });
      expect(out.error).toBeUndefined();
      expect(out.logs).toContain('bee');
      const again = await env.build(builder, df, { request: { noCache: false } });
      expect(new Set(states(again, /ADD|RUN/))).toEqual(new Set(['cached']));
    } finally {
      await builder.close();
    }
  });

  it('loopback is refused without the opt-in, before git runs', async () => {
    const { builder } = await env.builder();
    try {
      const refs = server.counts.infoRefs;
      const out = await env.build(builder, `FROM ${env.base}\nADD ${server.url('app')}#v1 /r\n`);
      expect(out.error?.code).toBe('PERMISSION_DENIED');
      expect(out.error?.message).toMatch(/127\.0\.0\.1 is a loopback address/);
      expect(server.counts.infoRefs).toBe(refs);
    } finally {
      await builder.close();
    }
  });

  describe('submodules (BuildKit fetches them), each remote checked like the superproject', () => {
    /** A superproject whose one submodule (a gitlink at libs/lib) points at `url`. */
    async function withSubmodule(name: string, url: string): Promise<void> {
      const lib = await server.repo(`${name}-lib`, { 'lib.txt': 'from the submodule\n' });
      const sup = await server.repo(name, { 'main.txt': 'main\n', '.gitmodules': `[submodule "lib"]\n\tpath = libs/lib\n\turl = ${url}\n` });
      // The gitlink alone (no clone in the work tree), committed without `add -A`, which would drop it.
      await git(sup.dir, 'update-index', '--add', '--cacheinfo', `160000,${await lib.head()},libs/lib`);
      await git(sup.dir, 'commit', '-q', '-m', 'add the submodule');
    }

    it('a relative submodule URL is fetched, and its gitfile does not land in the image', async () => {
      await withSubmodule('sup', '../sup-lib.git');
      const { builder } = await env.builder(OPT_IN);
      try {
        const out = await env.build(builder, `FROM ${env.base}\nADD ${server.url('sup')} /src\nRUN cat /src/libs/lib/lib.txt && ls -A /src/libs/lib | tr '\\n' ' '\n`);
        expect(out.error).toBeUndefined();
        expect(out.logs).toContain('from the submodule\n');
        expect(out.logs).toMatch(/^lib\.txt $/m);
        // With .git kept, the submodule's gitfile stays, pointing inside the image (never at a host path).
        const kept = await env.build(builder, `FROM ${env.base}\nADD --keep-git-dir=true ${server.url('sup')} /k\nRUN cat /k/libs/lib/lib.txt /k/libs/lib/.git\n`);
        expect(kept.error).toBeUndefined();
        expect(kept.logs).toContain('gitdir: ../../.git/modules/lib\n');
      } finally {
        await builder.close();
      }
    });

    it('an ext:: submodule is refused before git could run it', async () => {
      const marker = path.join(env.tmp, `pwned-${process.pid}`);
      await withSubmodule('evil', `ext::sh -c touch% ${marker}`);
      const { builder } = await env.builder(OPT_IN);
      try {
        const out = await env.build(builder, `FROM ${env.base}\nADD ${server.url('evil')} /src\n`);
        expect(out.error?.code).toBe('INVALID_ARGUMENT');
        expect(out.error?.message).toMatch(/submodule "lib": ext URLs are not fetched/);
        expect(existsSync(marker)).toBe(false);
      } finally {
        await builder.close();
      }
    });

    it("a submodule's host passes the URL policy too", async () => {
      await withSubmodule('far', `http://127.0.0.2:${server.port}/far-lib.git`);
      // The operator allows the superproject's address only.
      const { builder } = await env.builder({ httpPolicy: { allowNetworks: ['127.0.0.1/32'] } });
      try {
        const out = await env.build(builder, `FROM ${env.base}\nADD ${server.url('far')} /src\n`);
        expect(out.error?.code).toBe('PERMISSION_DENIED');
        expect(out.error?.message).toMatch(/127\.0\.0\.2 is a loopback address/);
      } finally {
        await builder.close();
      }
    });
  });

  it('a GIT_AUTH_TOKEN secret authenticates over http as BuildKit does, and lands nowhere', async () => {
    const token = 'tok-7f3a9c1e55';
    server.requireAuth = `basic ${Buffer.from(`x-access-token:${token}`).toString('base64')}`;
    const { builder, root } = await env.builder(OPT_IN);
    try {
      const denied = await env.build(builder, `FROM ${env.base}\nADD ${server.url('app')}#v1 /r\n`);
      expect(denied.error?.code).toBe('UNAUTHENTICATED');
      const out = await env.build(builder, `FROM ${env.base}\nADD ${server.url('app')}#v1 /r\nRUN cat /r/top.txt\n`, { secrets: new Map([['GIT_AUTH_TOKEN', Buffer.from(token)]]) });
      expect(out.error).toBeUndefined();
      expect(out.logs).toContain('top\n');
      expect(JSON.stringify(out.events)).not.toContain(token);
      const { sh } = await import('../security/harness.js');
      const grep = await sh('grep', ['-rl', token, root]).catch((e: { code?: number }) => ({ stdout: '', code: e.code }));
      expect(grep.stdout).toBe('');
    } finally {
      server.requireAuth = undefined;
      await builder.close();
    }
  });
});
