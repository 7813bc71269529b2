import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Graph } from './graph/index.js';
import { checkEmulation, elfHeader, EmulationProbe, EmulationUnavailableError, entryMatches, parseBinfmtEntry } from './emulation.js';

/** As the kernel prints Debian's qemu-user-static registrations. */
const AARCH64 = 'enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n';
const ARM = 'enabled\ninterpreter /usr/libexec/qemu-binfmt/arm-binfmt-P\nflags: POF\noffset 0\nmagic 7f454c4601010100000000000000000002002800\nmask ffffffffffffff00fffffffffffffffffeffffff\n';
const S390X = 'enabled\ninterpreter /usr/libexec/qemu-binfmt/s390x-binfmt-P\nflags: POF\noffset 0\nmagic 7f454c4602020100000000000000000000020016\nmask ffffffffffffff00fffffffffffffffffffeffff\n';

describe('binfmt_misc entries', () => {
  it('parses what the kernel prints', () => {
    const e = parseBinfmtEntry('qemu-aarch64', AARCH64);
    expect(e).toMatchObject({ name: 'qemu-aarch64', enabled: true, flags: 'POF', offset: 0, interpreter: '/usr/libexec/qemu-binfmt/aarch64-binfmt-P' });
    expect(e?.magic.toString('hex')).toBe('7f454c460201010000000000000000000200b700');
    expect(parseBinfmtEntry('jar', 'enabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n')).toBeUndefined();
  });

  it.each([
    ['arm64', AARCH64, true],
    ['arm64', ARM, false],
    ['arm', ARM, true],
    ['arm', AARCH64, false],
    ['amd64', AARCH64, false],
    ['s390x', S390X, true],
    ['ppc64le', S390X, false],
  ])('%s programs %s', (arch, text, match) => {
    expect(entryMatches(parseBinfmtEntry('x', text)!, elfHeader(arch)!)).toBe(match);
  });

  it('a disabled entry matches nothing', () => {
    expect(entryMatches(parseBinfmtEntry('x', AARCH64.replace('enabled', 'disabled'))!, elfHeader('arm64')!)).toBe(false);
  });

  it('the ELF header of the host is what the running node binary starts with', async () => {
    const { open } = await import('node:fs/promises');
    const f = await open(process.execPath, 'r');
    const head = Buffer.alloc(20);
    await f.read(head, 0, 20, 0);
    await f.close();
    const arch = process.arch === 'x64' ? 'amd64' : process.arch;
    const ours = elfHeader(arch)!;
    // Byte 7 (OS ABI) and e_type (static or PIE) vary between binaries, and registrations mask them: compare the rest.
    expect(ours.subarray(0, 7)).toEqual(head.subarray(0, 7));
    expect(ours.subarray(18, 20)).toEqual(head.subarray(18, 20));
  });
});

describe('EmulationProbe on a binfmt_misc directory', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'bl-binfmt-'));
    await writeFile(path.join(dir, 'register'), '');
    await writeFile(path.join(dir, 'status'), 'enabled\n');
    await writeFile(path.join(dir, 'qemu-aarch64'), AARCH64);
    await writeFile(path.join(dir, 'qemu-arm'), ARM.replace('flags: POF', 'flags: P'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const host = { os: 'linux', architecture: 'amd64' };

  it('the host and 386 run natively, arm64 emulated, arm without F and riscv64 not at all', async () => {
    const probe = new EmulationProbe(dir, host);
    expect(await probe.runner({ os: 'linux', architecture: 'amd64' })).toEqual({ kind: 'native' });
    expect(await probe.runner({ os: 'linux', architecture: '386' })).toEqual({ kind: 'native' });
    expect(await probe.runner({ os: 'linux', architecture: 'arm64' })).toEqual({ kind: 'emulated', entry: 'qemu-aarch64', interpreter: '/usr/libexec/qemu-binfmt/aarch64-binfmt-P' });
    expect(await probe.runner({ os: 'linux', architecture: 'arm', variant: 'v7' })).toEqual({ kind: 'unavailable', reason: expect.stringMatching(/qemu-arm for arm programs lacks the F flag/) });
    expect(await probe.runner({ os: 'linux', architecture: 'riscv64' })).toEqual({ kind: 'unavailable', reason: 'no binfmt_misc registration runs riscv64 programs' });
    expect((await probe.runnable()).map((r) => `${r.platform.architecture}${r.emulated ? '*' : ''}`)).toEqual(['amd64', 'arm64*', '386']);
  });

  it('an unmounted binfmt_misc says so', async () => {
    const probe = new EmulationProbe(path.join(dir, 'nope'), host);
    expect(await probe.runner({ os: 'linux', architecture: 'arm64' })).toEqual({ kind: 'unavailable', reason: `binfmt_misc is not mounted on ${path.join(dir, 'nope')}` });
  });

  it('checkEmulation names the first RUN that cannot run, at its line, and passes a graph it can run', async () => {
    const g = new Graph();
    const range = { file: 'Dockerfile', startLine: 3, endLine: 3 };
    const exec = (platform?: { os: string; architecture: string }) => ({ kind: 'exec' as const, args: ['true'], env: [], cwd: '/', user: { user: '0' }, network: 'none' as const, mounts: [], hasRoot: false, ...(platform ? { platform } : {}) });
    g.add(exec(), [], { name: 'amd64' });
    g.add(exec({ os: 'linux', architecture: 'arm64' }), [], { name: 'arm64' });
    await expect(checkEmulation(g, new EmulationProbe(dir, host))).resolves.toBeUndefined();
    g.add(exec({ os: 'linux', architecture: 'riscv64' }), [], { name: 'riscv', range });
    const err = await checkEmulation(g, new EmulationProbe(dir, host)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EmulationUnavailableError);
    expect((err as EmulationUnavailableError).range).toEqual(range);
    expect((err as Error).message).toMatch(/^RUN for linux\/riscv64 needs QEMU user emulation, which this machine lacks: no binfmt_misc registration runs riscv64 programs\. Install it as root with `bash scripts\/provision.sh`/);
  });
});
