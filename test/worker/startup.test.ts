import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ping } from '../helpers/redis.js';
import { freePort } from '../helpers/ports.js';
import { cleanupRoots } from '../helpers/service.js';
import { CLI } from '../helpers/cli.js';

describe('buildlite worker with Redis absent at start', () => {
  it('says clearly it cannot reach Redis, retries, and becomes ready once Redis is up', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bl-svc-start-'));
    const port = await freePort();
    const worker = spawn(process.execPath, [CLI, 'worker', '--redis', `redis://127.0.0.1:${port}`, '--root', path.join(dir, 'root'), '--id', 'late'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    worker.stdout.on('data', (b: Buffer) => (out += b.toString()));
    worker.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const until = async (re: RegExp) => {
      for (let i = 0; i < 300 && !re.test(out); i++) await new Promise((r) => setTimeout(r, 100));
      expect(out).toMatch(re);
    };
    const redis = { proc: undefined as ReturnType<typeof spawn> | undefined };
    try {
      await until(/cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+\/?; retrying/);
      redis.proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
      for (let i = 0; i < 100; i++) {
        if (await ping(port).catch(() => '') === '+PONG') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await until(/worker late ready/);
    } finally {
      worker.kill('SIGKILL');
      redis.proc?.kill('SIGKILL');
      await cleanupRoots([path.join(dir, 'root')]);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
