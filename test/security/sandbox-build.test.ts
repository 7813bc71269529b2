import { randomBytes } from 'node:crypto';
import { chmod, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountsUnder } from '../../core/mounter.js';
import { SecurityEnv, sh } from './harness.js';

/** Whole builds through Builder with real runc: what a RUN step can and cannot reach (docs/security.md T1, T11). */
describe('RUN sandbox, seen from inside a build', () => {
  let env: SecurityEnv;

  beforeAll(async () => {
    env = await SecurityEnv.start();
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('cannot see host processes, host network or host files; /proc/1/root is the sandbox', async () => {
    const { builder, root } = await env.builder();
    const token = randomBytes(8).toString('hex');
    const marker = path.join(env.tmp, `host-marker-${token}`);
    await writeFile(marker, `HOST-SECRET-${token}`);
    const registryPortHex = Number(env.registry.host.split(':')[1]).toString(16).toUpperCase().padStart(4, '0');
    const script = [
      `echo "PIDS:$(ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' ')"`,
      `echo "HOSTPID:$(test -e /proc/${process.pid}/status && echo yes || echo no)"`,
      `echo "NETDEV:$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' ')"`,
      `echo "SYSNET:$(ls /sys/class/net | tr '\\n' ' ')"`,
      `echo "TCP:$(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -c ':${registryPortHex} ')"`,
      `cat ${marker} 2>/dev/null; cat /proc/1/root${marker} 2>/dev/null`,
      `echo "FOUND:$(find / -xdev -name 'host-marker-*' 2>/dev/null | wc -l)"`,
      `echo "ROOT1:$(ls -a /proc/1/root | tr '\\n' ' ')"`,
      `echo "ROOT:$(ls -a / | tr '\\n' ' ')"`,
      `echo "PSBEGIN"; ps -o pid,comm; echo "PSEND"`,
    ].join('; ');
    const out = await env.build(builder, `FROM ${env.base}\nRUN ${script}\n`);
    expect(out.error).toBeUndefined();
    const line = (k: string) => out.logs.match(new RegExp(`^${k}:(.*)$`, 'm'))?.[1]?.trim() ?? `missing ${k}`;

    const pids = line('PIDS').split(/\s+/).map(Number);
    expect(pids).toContain(1);
    // A new pid namespace holds only this step's few processes.
    expect(Math.max(...pids)).toBeLessThan(100);
    expect(line('HOSTPID')).toBe('no');
    const ps = out.logs.slice(out.logs.indexOf('PSBEGIN'), out.logs.indexOf('PSEND'));
    expect(ps).not.toMatch(/node|vitest|registry|runc/);

    expect(line('NETDEV')).toBe('lo');
    expect(line('SYSNET')).toBe('lo');
    expect(line('TCP')).toBe('0'); // the registry's listening socket on host loopback is not here

    expect(out.logs).not.toContain(`HOST-SECRET-${token}`);
    expect(line('FOUND')).toBe('0');
    expect(line('ROOT1')).toBe(line('ROOT'));
    expect(line('ROOT')).toContain('bin');

    expect(await mountsUnder(root)).toEqual([]);
    expect(await env.runcContainers(root)).toBe('');
  });

  it('mount and unshare fail inside a step', async () => {
    const { builder } = await env.builder();
    const tries = [
      ['MOUNT_TMPFS', 'mount -t tmpfs none /tmp'],
      ['MOUNT_BIND', 'mount --bind / /tmp'],
      ['MOUNT_PROC', 'mkdir -p /p && mount -t proc proc /p'],
      ['UNSHARE_USER', 'unshare -U true'],
      ['UNSHARE_USER_ROOT', 'unshare -r true'],
      ['UNSHARE_MOUNT', 'unshare -m true'],
      ['UNSHARE_NET', 'unshare -n true'],
    ];
    const script = tries.map(([k, cmd]) => `if ${cmd} 2>/dev/null; then echo "${k}=ok"; else echo "${k}=denied"; fi`).join('; ');
    const out = await env.build(builder, `FROM ${env.base}\nRUN ${script}\n`);
    expect(out.error).toBeUndefined();
    for (const [k] of tries) expect(out.logs, k).toContain(`${k}=denied`);
    expect(out.logs).not.toMatch(/=ok/);
  });

  it('a fork bomb hits the pids limit and the build fails cleanly, naming the limit', async () => {
    const { builder, root } = await env.builder({ limits: { pids: 32, stepTimeoutMs: 60_000 } });
    const out = await env.build(builder, `FROM ${env.base}\nRUN echo start; b() { b | b & }; b; sleep 3; exit 7\n`);
    expect(out.error?.code).toBe('LIMIT_EXCEEDED');
    expect(out.error?.details).toMatchObject({ limit: 'pids', value: 32, timedOut: false });
    expect(out.error?.message).toMatch(/^RUN exceeded the pids limit of 32 \(a new process was refused/);
    expect(out.error?.range?.startLine).toBe(2);
    expect(out.logs).toMatch(/can't fork|Resource temporarily unavailable/);
    expect(await mountsUnder(root)).toEqual([]);
    expect(await env.runcContainers(root)).toBe('');
    // The pids cgroup held: the host still forks fine and the builder runs the next build.
    const next = await env.build(builder, `FROM ${env.base}\nRUN echo alive\n`);
    expect(next.error).toBeUndefined();
    expect(next.logs).toContain('alive');
  });

  it('a step that sleeps past its timeout is killed; the build fails with the reason; nothing stays mounted or running', async () => {
    const { builder, root } = await env.builder({ limits: { stepTimeoutMs: 1500 } });
    const out = await env.build(builder, `FROM ${env.base}\nRUN echo before\nRUN sleep 600 & sleep 600\nRUN echo never\n`);
    expect(out.error?.code).toBe('LIMIT_EXCEEDED');
    expect(out.error?.message).toBe('RUN exceeded the step timeout of 1.5s (killed with every process it started)');
    expect(out.error?.details).toMatchObject({ limit: 'stepTimeoutMs', value: 1500, timedOut: true });
    expect(out.error?.range?.startLine).toBe(3);
    expect(out.logs).not.toContain('never');
    expect(await mountsUnder(root)).toEqual([]);
    expect(await env.runcContainers(root)).toBe('');
    // The sleeps died with the namespace: no process of the step survives on the host.
    const { stdout } = await sh('ps', ['-eo', 'args']);
    expect(stdout.split('\n').filter((l) => l.trim() === 'sleep 600')).toEqual([]);
  });

  it('the state root and its content, snapshot and runc dirs are private to the owner', async () => {
    const { builder, root } = await env.builder();
    const out = await env.build(builder, `FROM ${env.base}\nRUN echo x > /x\n`);
    expect(out.error).toBeUndefined();
    for (const rel of ['', 'content', 'snapshots', 'exec', 'exec/runc', 'tmp', 'cache']) {
      const st = await stat(path.join(root, rel)).catch(() => undefined);
      if (!st) {
        expect.soft(rel, `${rel} missing`).toBe('(exists)');
        continue;
      }
      expect.soft(st.mode & 0o077, `${rel || '.'} mode ${(st.mode & 0o777).toString(8)}`).toBe(0);
    }
    // From another user, with the temp parent opened up: the root itself must stop them.
    await chmod(env.tmp, 0o711);
    try {
      const asNobody = { uid: 65534, gid: 65534 };
      await expect(sh('ls', [root], asNobody)).rejects.toThrow(/Permission denied/);
      await expect(sh('ls', [path.join(root, 'content')], asNobody)).rejects.toThrow(/Permission denied/);
    } finally {
      await chmod(env.tmp, 0o700);
    }
  });
});
