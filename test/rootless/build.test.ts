/**
 * Rootless mode end to end (README "Rootless", docs/security.md T16): a user
 * made for the test, given its subordinate ids by scripts/provision.sh, runs
 * the built CLI through setpriv (its uid, gid and groups, no capabilities).
 * What it builds must be the image root builds from the same inputs, byte
 * for byte, with the step's uids in the layers as root would write them.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile, chmod, chown } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMountPoints } from '../../core/mounter.js';
import { pushBusyboxBase } from '../helpers/base-image.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { until } from '../helpers/procs.js';
import { createRootlessUser, type RootlessUser } from '../helpers/rootless-user.js';

const sh = promisify(execFile);

describe('rootless builds, as an unprivileged user', () => {
  let registry: TestRegistry;
  let user: RootlessUser;
  let tmp: string;
  let ctx: string;
  /** A build run before the user had subordinate ids. */
  let unprovisioned: CliResult;

  beforeAll(async () => {
    registry = await startRegistry();
    await pushBusyboxBase(registry.host);
    user = await createRootlessUser();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-rootless-ctx-'));
    await chmod(tmp, 0o755);
    ctx = path.join(tmp, 'ctx');
    await mkdir(ctx);
    await writeFile(path.join(ctx, 'a.txt'), 'from the context\n');
    await writeFile(
      path.join(ctx, 'Dockerfile'),
      [
        `FROM ${registry.host}/library/busybox:latest`,
        'COPY --chown=1000:1000 a.txt /home/app/a.txt',
        // A file given to uid 1000 by root in the step; a hardlink; a tree the next step replaces.
        'RUN echo hi > /f && chown 1000 /f && ln /f /f2 && chown 1000:50 /home/app && mkdir -p /srv/x && echo y > /srv/x/y',
        // Whiteouts and an opaque directory, as overlay marks them in the user namespace.
        'RUN rm -rf /srv/x && mkdir /srv/x && echo z > /srv/x/z && rm /etc/group',
        'USER app',
        'RUN id -u | tee /home/app/uid && echo app > /home/app/own',
        '',
      ].join('\n'),
    );
    unprovisioned = await user.cli(['build', '--progress', 'plain', ctx]);
    await user.provision();
  });

  afterAll(async () => {
    await user?.remove();
    await rm(tmp, { recursive: true, force: true });
    await registry?.stop();
  });

  it('without subordinate ids, a build fails at once naming /etc/subuid and the command that adds a range', async () => {
    const r = unprovisioned;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`user ${user.name} (uid ${user.uid}) has no subordinate uid range in /etc/subuid`);
    expect(r.stderr).toContain(`usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${user.name}`);
    expect(r.stderr).toContain(`scripts/provision.sh --rootless-user ${user.name}`);
    // Refused before anything was made.
    expect(await stat(user.stateRoot).catch(() => undefined)).toBeUndefined();
  });

  it('builds and pushes the image root builds, byte for byte, with uid 1000 on the file chowned in the step', async () => {
    const epoch = { SOURCE_DATE_EPOCH: '1700000000' };
    const rootful = await runCli(['build', '--root', path.join(tmp, 'rootful'), '--progress', 'plain', '-t', `${registry.host}/app:root`, '--push', ctx], { env: epoch });
    expect(rootful.stderr).not.toContain('rootless');
    expect(rootful.code, rootful.stderr).toBe(0);
    const oci = path.join(user.home, 'image.tar');
    const r = await user.cli(['build', '--progress', 'plain', '--metadata-file', path.join(user.home, 'meta.json'), '-t', `${registry.host}/app:rootless`, '--push', '-o', `type=oci,dest=${oci}`, ctx], { env: epoch });
    expect(r.code, r.stderr).toBe(0);

    // The limits a rootless builder on cgroup v1 cannot enforce are named at start.
    expect(r.stderr).toMatch(/^warning: memory: rootless on cgroup v\d.*: steps run without the memory limit/m);
    expect(r.stderr).toMatch(/^warning: pids: rootless on cgroup v\d.*per-uid RLIMIT_NPROC/m);
    expect(r.stderr).toMatch(/^#\d+ 1000$/m); // `id -u` under USER app

    const rootDigest = /#done image (sha256:[0-9a-f]{64})/.exec(rootful.stderr)?.[1];
    const userDigest = JSON.parse(await readFile(path.join(user.home, 'meta.json'), 'utf8'))['containerimage.digest'] as string;
    expect(rootDigest).toMatch(/^sha256:/);
    expect(userDigest).toBe(rootDigest);
    // What the registry holds under both tags is one manifest.
    const head = async (tag: string) => (await fetch(`http://${registry.host}/v2/app/manifests/${tag}`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).headers.get('docker-content-digest');
    expect(await head('rootless')).toBe(rootDigest);
    expect(await head('root')).toBe(rootDigest);

    // The layers, read from the rootless build's own OCI output.
    const out = path.join(tmp, 'oci');
    await mkdir(out);
    await sh('tar', ['-xf', oci, '-C', out]);
    const index = JSON.parse(await readFile(path.join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    const blob = (d: string) => path.join(out, 'blobs', ...d.split(':'));
    const manifest = JSON.parse(await readFile(blob(index.manifests[0]!.digest), 'utf8')) as { layers: Array<{ digest: string }> };
    const list = async (i: number) => (await sh('tar', ['--numeric-owner', '-tvzf', blob(manifest.layers[i]!.digest)])).stdout;
    const copy = await list(1);
    expect(copy).toMatch(/^-\S+ 1000\/1000 .* home\/app\/a\.txt$/m);
    const run1 = await list(2);
    expect(run1).toMatch(/^-\S+ 1000\/0 .* f$/m);
    expect(run1).toMatch(/^h\S+ 1000\/0 .* f2 link to f$/m);
    expect(run1).toMatch(/^d\S+ 1000\/50 .* home\/app\/$/m);
    const run2 = await list(3);
    expect(run2).toMatch(/ srv\/x\/\.wh\.\.wh\.\.opq$/m);
    expect(run2).toMatch(/ etc\/\.wh\.group$/m);
    expect(run2).toMatch(/^-\S+ 0\/0 .* srv\/x\/z$/m);
    const run3 = await list(4);
    expect(run3).toMatch(/^-\S+ 1000\/1000 .* home\/app\/own$/m);

    // State under the user's data dir, private to it, with the rootless overlay marks recorded.
    const st = await stat(user.stateRoot);
    expect(st.uid).toBe(user.uid);
    expect(st.mode & 0o777).toBe(0o700);
    expect((await readFile(path.join(user.stateRoot, 'snapshots', 'overlay-xattrs'), 'utf8')).trim()).toBe('user');
    // Its mounts lived in its own mount namespace: none on the host; no process of the user is left.
    expect(parseMountPoints(await readFile('/proc/self/mountinfo', 'utf8'), user.home)).toEqual([]);
    expect(await user.processes()).toEqual([]);
  });

  it('a rebuild is all cache hits; push, du and prune run rootless on the same state', async () => {
    const again = await user.cli(['build', '--progress', 'plain', '-t', 'app:local', ctx], { env: { SOURCE_DATE_EPOCH: '1700000000' } });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/#done image sha256:\S+ \(.*, 5 cached, 0 run\)/);
    const push = await user.cli(['push', 'app:local', `${registry.host}/app:pushed`]);
    expect(push.code, push.stderr).toBe(0);
    const du = await user.cli(['du', '--format', 'json']);
    expect(du.code, du.stderr).toBe(0);
    expect((JSON.parse(du.stdout) as { total: number }).total).toBeGreaterThan(0);
    const prune = await user.cli(['prune', '--all', '-f']);
    expect(prune.code, prune.stderr).toBe(0);
  });

  it('a fork bomb is held by the step RLIMIT_NPROC (no pids cgroup here) and the step ends by itself', async () => {
    const bomb = path.join(tmp, 'bomb');
    await mkdir(bomb);
    await writeFile(path.join(bomb, 'Dockerfile'), `FROM ${registry.host}/library/busybox:latest\nRUN echo start; b() { b | b & }; b; sleep 2; exit 7\n`);
    await chown(bomb, user.uid, user.gid);
    const r = await user.cli(['build', '--progress', 'plain', '--no-cache', '--pids', '64', '--step-timeout', '60s', bomb]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/can't fork|Resource temporarily unavailable/);
    // The step's own exit, not the timeout: the bomb could not grow past the limit.
    expect(r.stderr).toContain('exit code: 7');
    expect(r.stderr).not.toMatch(/step timeout/);
    // The next build on the same state runs.
    await writeFile(path.join(bomb, 'Dockerfile'), `FROM ${registry.host}/library/busybox:latest\nRUN echo alive\n`);
    const next = await user.cli(['build', '--progress', 'plain', '--no-cache', bomb]);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toContain('alive');
  });

  /** A context whose RUN prints `marker` and then runs until killed, with a process in the background. */
  async function endless(name: string, marker: string): Promise<string> {
    const dir = path.join(tmp, name);
    await mkdir(dir);
    await writeFile(path.join(dir, 'Dockerfile'), `FROM ${registry.host}/library/busybox:latest\nRUN echo ${marker}; sleep 1000 & while true; do sleep 0.1; done\n`);
    return dir;
  }

  it('Ctrl-C (SIGINT to the CLI the user started) cancels the build in its namespace: exit 130, no process of the user left', async () => {
    const marker = `started-${Math.random().toString(36).slice(2)}`;
    const b = user.startCli(['build', '--progress', 'plain', '--no-cache', await endless('interrupted', marker)]);
    await b.waitFor(new RegExp(`${marker}\\n`));
    b.child.kill('SIGINT');
    expect(await b.exited).toEqual({ code: 130, signal: null });
    await until('no process of the user is left', async () => (await user.processes()).length === 0, 10_000);
  });

  it('SIGKILL of the CLI mid-RUN: the builder in the namespace dies with it and its watcher stops the step', async () => {
    const marker = `started-${Math.random().toString(36).slice(2)}`;
    const b = user.startCli(['build', '--progress', 'plain', '--no-cache', await endless('killed', marker)]);
    await b.waitFor(new RegExp(`${marker}\\n`));
    // The step's processes are the user's (uid 0 of the namespace): several, beside the two CLIs.
    expect((await user.processes()).length).toBeGreaterThan(4);
    b.child.kill('SIGKILL');
    await b.exited;
    await until('no process of the user is left', async () => (await user.processes()).length === 0, 10_000);
    // The next command on the state reclaims what is left (bundles, records) and runs.
    const du = await user.cli(['du']);
    expect(du.code, du.stderr).toBe(0);
  });
});
