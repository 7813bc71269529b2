import { test } from 'vitest';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makeBusyboxRootfs } from '../../test/helpers/busybox-rootfs.js';
import { RuncExecutor } from '../../builder/executor/index.js';
test('smoke', async () => {
  const d = await mkdtemp(path.join(os.tmpdir(), 'bl-smoke-'));
  await makeBusyboxRootfs(path.join(d, 'rootfs'));
  const ex = new RuncExecutor({ stateDir: path.join(d, 'state') });
  const out: string[] = [];
  const t0 = Date.now();
  const r = await ex.run({ args: ['/bin/sh', '-c', 'id; ip addr; cat /proc/self/status | grep Cap; ls /proc; echo err >&2; exit 3'], env: [], cwd: '/work/x', user: 'app' },
    { rootfs: [{ type: 'bind', source: path.join(d, 'rootfs'), options: ['rbind', 'rw'] }], network: 'none',
      onStdout: (c) => out.push(c.toString()), onStderr: (c) => out.push('E:' + c.toString()) });
  console.log(Date.now() - t0, r, out.join(''));
}, 60000);
