import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountsUnder } from '../../core/mounter.js';
import { pushBusyboxBase } from '../helpers/base-image.js';
import { REPO_ROOT, runCli } from '../helpers/cli.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

const sh = promisify(execFile);

describe('walking skeleton: Dockerfile in, image in a registry out', () => {
  let registry: TestRegistry;
  let tmp: string;
  let root: string;

  beforeAll(async () => {
    registry = await startRegistry();
    await pushBusyboxBase(registry.host);
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-e2e-'));
    root = path.join(tmp, 'state');
  });

  afterAll(async () => {
    await registry?.stop();
    if (tmp) {
      for (const m of await mountsUnder(tmp)) await sh('umount', ['-l', m]).catch(() => undefined);
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it('builds the bundled example, pushes it, and the image runs under runc with its greeting', async () => {
    const ref = `${registry.host}/examples/hello:e2e`;
    const iid = path.join(tmp, 'iid');
    const res = await runCli([
      'build', '--root', root, '--progress', 'plain',
      '--build-arg', `BASE=${registry.host}/library/busybox:latest`,
      '-t', ref, '--push', '--iidfile', iid, path.join(REPO_ROOT, 'examples/hello'),
    ]);
    expect(res.stderr + res.stdout).toContain('pushed to');
    expect(res.code).toBe(0);
    const digest = (await readFile(iid, 'utf8')).trim();
    expect(digest).toMatch(/^sha256:[a-f0-9]{64}$/);

    // An independent client reads it back.
    const { stdout: raw } = await sh('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`]);
    const inspect = JSON.parse(raw) as { Digest: string; Env: string[]; Layers: string[] };
    expect(inspect.Digest).toBe(digest);
    expect(inspect.Env).toContain('GREETING=Hello from buildlite!');

    // umoci unpacks it and runc runs it: the greeting and the RUN's output come back.
    const layout = path.join(tmp, 'layout');
    await sh('skopeo', ['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:hello`]);
    const bundle = path.join(tmp, 'bundle');
    await sh('umoci', ['unpack', '--image', `${layout}:hello`, bundle]);
    const cfgPath = path.join(bundle, 'config.json');
    const spec = JSON.parse(await readFile(cfgPath, 'utf8')) as { process: { terminal: boolean } };
    spec.process.terminal = false;
    await writeFile(cfgPath, JSON.stringify(spec));
    const runcRoot = path.join(tmp, 'runc');
    await mkdir(runcRoot, { recursive: true });
    const id = `bl-e2e-${process.pid}`;
    try {
      const { stdout } = await sh('runc', ['--root', runcRoot, 'run', '--bundle', bundle, id], { timeout: 60_000 });
      expect(stdout).toContain('Hello from buildlite!');
      expect(stdout).toMatch(/built in a sandbox as root/);
    } finally {
      await sh('runc', ['--root', runcRoot, 'delete', '--force', id]).catch(() => undefined);
    }
  });

  it('a failing RUN exits non-zero with the output and the Dockerfile line, pushes nothing, leaves nothing mounted', async () => {
    const ctx = path.join(tmp, 'failing');
    await mkdir(ctx, { recursive: true });
    await writeFile(
      path.join(ctx, 'Dockerfile'),
      `FROM ${registry.host}/library/busybox:latest\nRUN echo about to fail\nRUN echo the-step-output && exit 3\nRUN echo never\n`,
    );
    const ref = `${registry.host}/examples/failing:e2e`;
    const res = await runCli(['build', '--root', root, '--progress', 'plain', '-t', ref, '--push', ctx]);
    expect(res.code).toBe(1);
    const out = res.stderr + res.stdout;
    expect(out).toContain('the-step-output');
    expect(out).toContain('exit code: 3');
    expect(out).toMatch(/>>> RUN echo the-step-output && exit 3/);
    expect(out).toContain('Dockerfile:3');
    expect(out).not.toMatch(/^#\d+ never$/m); // the step after the failure never ran
    await expect(sh('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`])).rejects.toThrow();
    expect(await mountsUnder(root)).toEqual([]);
    const { stdout: list } = await sh('runc', ['--root', path.join(root, 'exec', 'runc'), 'list', '-q']).catch(() => ({ stdout: '' }));
    expect(list.trim()).toBe('');
  });
});
