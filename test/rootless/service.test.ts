/**
 * A rootless worker (README "Rootless"): `buildlite worker` run by an
 * unprivileged user takes builds from the queue of a service whose API runs
 * elsewhere (here: as root), sharing contexts and step logs through a
 * registry store, so the two share no directory. The image it builds is the
 * one a root build of the same inputs gives.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushBusyboxBase } from '../helpers/base-image.js';
import { runCli } from '../helpers/cli.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { createRootlessUser, type RootlessUser, type RunningCli } from '../helpers/rootless-user.js';
import { FAST_LOCKS, startService, TOKENS, type Service } from '../helpers/service.js';

describe('a rootless worker', () => {
  let redis: TestRedis;
  let registry: TestRegistry;
  let svc: Service;
  let user: RootlessUser;
  let worker: RunningCli | undefined;
  let tmp: string;

  beforeAll(async () => {
    [redis, registry] = await Promise.all([startRedis(), startRegistry()]);
    await pushBusyboxBase(registry.host);
    const contexts = `registry://${registry.host}/buildlite-store`;
    svc = await startService({ redisUrl: redis.url, workers: 0, contexts });
    user = await createRootlessUser();
    await user.provision();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-rootless-svc-'));
    await chmod(tmp, 0o755);
    worker = user.startCli(['worker', '--redis', redis.url, '--contexts', contexts, '--prefix', svc.prefix, '--id', 'rootless', '--drain-seconds', '5', ...FAST_LOCKS]);
    await worker.waitFor(/worker rootless ready/);
  });

  afterAll(async () => {
    if (worker && worker.child.exitCode === null) {
      worker.child.kill('SIGTERM');
      await worker.exited;
    }
    await user?.remove();
    await svc?.stop();
    await Promise.all([redis?.stop(), registry?.stop()]);
    await rm(tmp, { recursive: true, force: true });
  });

  it('takes a build from the queue, runs its steps rootless and pushes the image a root build gives', async () => {
    // At start it says, at warn, which limits it cannot enforce rootless.
    expect(worker!.output()).toMatch(/limit not enforced: memory: rootless on cgroup v\d/);
    const ctx = path.join(tmp, 'ctx');
    await mkdir(ctx);
    await writeFile(path.join(ctx, 'Dockerfile'), `FROM ${registry.host}/library/busybox:latest\nRUN echo built > /f && chown 1000:1000 /f && cat /proc/self/uid_map\n`);
    const epoch = { SOURCE_DATE_EPOCH: '1700000000' };
    const remote = await runCli(['build', '--server', svc.addr, '--token', TOKENS.alice, '--progress', 'plain', '--metadata-file', path.join(tmp, 'remote.json'), '-t', `${registry.host}/svc/app:rootless`, '--push', ctx], { env: epoch });
    expect(remote.code, remote.stderr).toBe(0);
    // The step ran in the worker's user namespace: its root is the user.
    expect(remote.stderr).toMatch(new RegExp(`^#\\d+\\s+0\\s+${user.uid}\\s+1$`, 'm'));
    const local = await runCli(['build', '--root', path.join(tmp, 'rootful'), '--progress', 'plain', '--metadata-file', path.join(tmp, 'local.json'), ctx], { env: epoch });
    expect(local.code, local.stderr).toBe(0);
    const digestOf = async (f: string) => JSON.parse(await readFile(path.join(tmp, f), 'utf8'))['containerimage.digest'] as string;
    expect(await digestOf('remote.json')).toBe(await digestOf('local.json'));
    // The worker's cache is in the user's data dir.
    expect((await stat(path.join(user.stateRoot, 'content'))).uid).toBe(user.uid);
  });

  it('drains on SIGTERM and leaves no process of the user', async () => {
    worker!.child.kill('SIGTERM');
    expect((await worker!.exited).code).toBe(0);
    expect(await user.processes()).toEqual([]);
  });
});
