/**
 * RUN steps for another architecture, under the QEMU user emulation that
 * scripts/provision.sh registers: an arm64 step is an arm64 process
 * (`uname -m` says aarch64). A machine without emulation is made for real,
 * without touching this one's: the CLI runs in a mount namespace of its own
 * whose binfmt_misc is an empty tmpfs, so the builder sees none.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCliFixture, type CliFixture } from '../cli/fixture.js';
import { CLI } from '../helpers/cli.js';
import { pushMultiArchBusybox, type MultiArchBase } from '../helpers/multi-arch-base.js';

describe('RUN under emulation', () => {
  let f: CliFixture;
  let multi: MultiArchBase;

  beforeAll(async () => {
    f = await startCliFixture('platform-emu');
    multi = await pushMultiArchBusybox(f.registry.host);
  });
  afterAll(async () => {
    await f?.close();
  });

  it('an arm64 RUN is an aarch64 process, and its output lands in the arm64 image', async () => {
    const ctx = await f.context('uname', { Dockerfile: `FROM ${multi.ref}\nRUN uname -m > /machine && echo "said $(cat /machine)"\n` });
    const out = path.join(f.tmp, 'uname-out');
    const r = await f.build(['--progress', 'plain', '--platform', 'linux/arm64', '-o', `type=local,dest=${out}`, ctx]);
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(path.join(out, 'machine'), 'utf8')).toBe('aarch64\n');
    expect(r.stderr + r.stdout).toContain('said aarch64');
  });

  it('the same RUN for linux/amd64 is native', async () => {
    const ctx = await f.context('uname-amd64', { Dockerfile: `FROM ${multi.ref}\nRUN uname -m > /machine\n` });
    const out = path.join(f.tmp, 'uname-amd64-out');
    const r = await f.build(['--progress', 'plain', '--platform', 'linux/amd64', '-o', `type=local,dest=${out}`, ctx]);
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(path.join(out, 'machine'), 'utf8')).toBe('x86_64\n');
  });

  it('without emulation the build fails before any step runs, at the RUN that needs it, saying what to install', async () => {
    const ctx = await f.context('no-emu', {
      Dockerfile: [
        `FROM --platform=$BUILDPLATFORM ${f.base} AS native`,
        'RUN echo ran-$((40+1)) > /n',
        `FROM ${multi.ref}`,
        'COPY --from=native /n /n',
        'RUN uname -m',
        '',
      ].join('\n'),
    });
    const script = 'mount -t tmpfs none /proc/sys/fs/binfmt_misc && exec "$@"';
    const r = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', process.execPath, CLI, 'build', '--root', f.root, '--progress', 'plain', '--platform', 'linux/arm64', ctx], (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: stdout + stderr });
      });
    });
    expect(r.code).toBe(1);
    expect(r.out).toContain('RUN for linux/arm64 needs QEMU user emulation, which this machine lacks: binfmt_misc is not mounted on /proc/sys/fs/binfmt_misc');
    expect(r.out).toContain('bash scripts/provision.sh');
    expect(r.out).toMatch(/Dockerfile:5\n[\s\S]*5 \| >>> RUN uname -m/);
    expect(r.out).not.toContain('ran-41');
  });
});
