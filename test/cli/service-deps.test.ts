import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unmountAll } from '../helpers/build-driver.js';
import { runCli } from '../helpers/cli.js';

/**
 * The service's dependencies (gRPC, BullMQ, ioredis, pino, prom-client) stay
 * in node_modules, and a command that does not talk to a service must not
 * load them: they cost a local build ~0.3 s of CPU (issue 18). A preload hook
 * records every module the bundle requires from outside itself.
 */
const SERVICE_DEPS = ['@grpc/grpc-js', '@grpc/proto-loader', 'bullmq', 'ioredis', 'pino', 'prom-client'];

describe('local commands do not load the service dependencies', () => {
  let tmp: string;
  let hook: string;
  let root: string;
  let ctx: string;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-service-deps-'));
    hook = path.join(tmp, 'record-requires.cjs');
    // Appends the name of each bare (node_modules) request the process makes.
    await writeFile(
      hook,
      [
        "const Module = require('node:module');",
        "const fs = require('node:fs');",
        'const load = Module._load;',
        'Module._load = function (request, ...rest) {',
        "  if (!request.startsWith('node:') && !request.startsWith('.') && !request.startsWith('/')) fs.appendFileSync(process.env.BL_REQUIRES_LOG, request + '\\n');",
        '  return load.call(this, request, ...rest);',
        '};',
        '',
      ].join('\n'),
    );
    root = path.join(tmp, 'state');
    ctx = path.join(tmp, 'ctx');
    await mkdir(ctx);
    await writeFile(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY a.txt /a.txt\n');
    await writeFile(path.join(ctx, 'a.txt'), 'a\n');
  });
  afterAll(async () => {
    await unmountAll(tmp);
    await rm(tmp, { recursive: true, force: true });
  });

  async function requiresOf(args: string[]): Promise<string[]> {
    const log = path.join(tmp, `requires-${args[0]}-${Math.random().toString(36).slice(2)}.log`);
    await writeFile(log, '');
    const r = await runCli(args, { env: { NODE_OPTIONS: `--require ${hook}`, BL_REQUIRES_LOG: log, BUILDLITE_SERVER: '' } });
    expect(r.code, r.stderr).toBe(0);
    return [...new Set((await readFile(log, 'utf8')).split('\n').filter(Boolean))];
  }

  it.each([
    ['build', () => ['build', '--root', root, '--progress', 'plain', '-t', 'local/app:1', ctx]],
    ['du', () => ['du', '--root', root]],
    ['prune', () => ['prune', '--root', root, '--all', '-f']],
  ])('%s', async (_name, args) => {
    const loaded = await requiresOf(args());
    expect(loaded.filter((m) => SERVICE_DEPS.some((d) => m === d || m.startsWith(`${d}/`)))).toEqual([]);
  });

  it('the hook sees them where they are needed: a command that talks to a server loads gRPC', async () => {
    const log = path.join(tmp, 'requires-ls.log');
    await writeFile(log, '');
    // No server listens there: the command fails, after loading its client.
    await runCli(['ls', '--server', '127.0.0.1:1', '--token', 'x'.repeat(20)], { env: { NODE_OPTIONS: `--require ${hook}`, BL_REQUIRES_LOG: log } });
    expect((await readFile(log, 'utf8')).split('\n')).toContain('@grpc/grpc-js');
  });
});
