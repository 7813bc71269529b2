import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFaultServer, type FaultServer } from '../helpers/fault-server.js';
import { startFileServer, type FileServer } from '../helpers/file-server.js';
import { startCliFixture, type CliFixture } from './fixture.js';

// RUN steps print `step-42`, which is not in the Dockerfile text a failure's excerpt shows: seeing it means a step ran.

/**
 * The embedded CLI and the network: ADD <url> stays off this machine's
 * loopback unless the developer opts in; references and URLs with passwords
 * never come back on the terminal; stalled registries and file servers fail
 * in seconds, with the phase and host named.
 */
describe('buildlite build and the network', () => {
  let f: CliFixture;
  let files: FileServer;
  let port: number;
  let fault: FaultServer;
  const stalls = new Map<string, number>();
  let requests = 0;
  const secret = `Pw-${randomBytes(6).toString('hex')}`;

  beforeAll(async () => {
    f = await startCliFixture('net');
    fault = await startFaultServer(f.registry.url);
    // Both families: 127.0.0.1 and ::1 reach it.
    files = await startFileServer('::', (req, res) => {
      requests++;
      const u = new URL(req.url ?? '/', 'http://x');
      const left = stalls.get(u.pathname) ?? 0;
      if (left > 0) {
        stalls.set(u.pathname, left - 1);
        return; // read, never answered
      }
      res.end(`fetched ${u.pathname}\n`);
    });
    port = files.port;
  });
  afterAll(async () => {
    await files?.stop();
    await fault?.stop();
    await f?.close();
  });

  const addContext = (url: string) => f.context(`add-${randomBytes(4).toString('hex')}`, { Dockerfile: `FROM ${f.base}\nRUN echo step-$((6*7))\nADD ${url} /dl/got.txt\n` });

  it('ADD of a loopback URL, in each spelling, is refused by default with the opt-in named, before any request', async () => {
    for (const host of ['127.0.0.1', '[::ffff:127.0.0.1]', '2130706433', '0x7f.1', '[::1]', 'localhost']) {
      const before = requests;
      const r = await f.build(['--progress', 'plain', await addContext(`http://${host}:${port}/file`)]);
      expect(r.code, host).toBe(1);
      expect(r.stderr).toMatch(/is a loopback address, which URL fetches may not reach; to allow it, pass --allow-private-urls \(or set BUILDLITE_ALLOW_PRIVATE_URLS=1\)/);
      expect(r.stderr).not.toContain('step-42');
      expect(requests).toBe(before);
    }
  });

  it('--allow-private-urls, or BUILDLITE_ALLOW_PRIVATE_URLS=1, lets the developer fetch from this machine', async () => {
    for (const [host, how] of [['0x7f.1', 'flag'], ['[::1]', 'env'], ['2130706433', 'flag'], ['[::ffff:127.0.0.1]', 'env']] as const) {
      const out = path.join(f.tmp, `allowed-${randomBytes(4).toString('hex')}`);
      const args = ['--progress', 'plain', '--no-cache', '-o', `type=local,dest=${out}`, ...(how === 'flag' ? ['--allow-private-urls'] : []), await addContext(`http://${host}:${port}/file`)];
      const r = await f.build(args, how === 'env' ? { env: { BUILDLITE_ALLOW_PRIVATE_URLS: '1' } } : {});
      expect(r.code, `${host} ${r.stderr}`).toBe(0);
      expect(r.stderr).toContain('step-42'); // the marker the refusals above never show
      expect(await readFile(path.join(out, 'dl', 'got.txt'), 'utf8')).toBe('fetched /file\n');
    }
  });

  it('a reference with a password fails at flag parsing (usage error), before any step, and the password is never printed', async () => {
    const ctx = await f.context('cred-ref', { Dockerfile: `FROM ${f.base}\nRUN echo step-$((6*7))\n` });
    const cases: string[][] = [
      ['-t', `user:${secret}@${f.registry.host}/x:1`, '--push'],
      ['-t', `user:${secret}@${f.registry.host}/x:1`],
      ['-t', `${f.registry.host}/x:1`, '--output', `type=registry,name=user:${secret}@${f.registry.host}/y:1`],
      ['--cache-to', `type=registry,ref=user:${secret}@${f.registry.host}/cache:1`],
      ['--cache-from', `type=registry,ref=${secret}@${f.registry.host}/cache:1`],
      // A build service would get the same answer, without being contacted.
      ['--server', '127.0.0.1:1', '--token', 't', '-t', `user:${secret}@${f.registry.host}/x:1`, '--push'],
    ];
    for (const args of cases) {
      const r = await f.build(['--progress', 'plain', ...args, ctx]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain('carries credentials');
      expect(r.stderr).toContain(`buildlite login ${f.registry.host}`);
      expect(r.stdout + r.stderr).not.toContain(secret);
      expect(r.stderr).not.toContain('step-42');
    }
    const push = await f.cli(['push', '--root', f.root, `${f.registry.host}/x:1`, `me:${secret}@${f.registry.host}/x:1`]);
    expect(push.code).toBe(2);
    expect(push.stdout + push.stderr).not.toContain(secret);
  });

  it('an ADD URL with a password is refused, and the password is in no output, progress mode or graph', async () => {
    const ctx = await f.context('cred-url', { Dockerfile: `FROM ${f.base}\nRUN echo step-$((6*7))\nADD http://user:${secret}@127.0.0.1:${port}/file /dl/\n` });
    const before = requests;
    for (const progress of ['plain', 'json']) {
      const r = await f.build(['--progress', progress, '--allow-private-urls', ctx]);
      expect(r.code).toBe(1);
      expect(r.stdout + r.stderr).toContain('URLs with credentials are refused');
      expect(r.stdout + r.stderr).not.toContain(secret);
    }
    for (const format of ['json', 'dot', 'mermaid']) {
      const g = await f.cli(['graph', '--format', format, ctx]);
      expect(g.code, g.stderr).toBe(0);
      expect(g.stdout).toContain('127.0.0.1');
      expect(g.stdout + g.stderr).not.toContain(secret);
    }
    expect(requests).toBe(before);
  });

  it('an ADD URL that never answers is retried after --http-timeouts headers=, then fetched; one that never does fails in seconds', async () => {
    stalls.set('/stall-once', 1);
    const out = path.join(f.tmp, 'stall-once');
    const ok = await f.build(['--progress', 'plain', '--allow-private-urls', '--http-timeouts', 'headers=1s', '-o', `type=local,dest=${out}`, await addContext(`http://127.0.0.1:${port}/stall-once`)]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(stalls.get('/stall-once')).toBe(0);
    expect(await readFile(path.join(out, 'dl', 'got.txt'), 'utf8')).toBe('fetched /stall-once\n');

    stalls.set('/stall-always', 1000);
    const t0 = Date.now();
    const bad = await f.build(['--progress', 'plain', '--allow-private-urls', await addContext(`http://127.0.0.1:${port}/stall-always`)], {
      env: { BUILDLITE_HTTP_TIMEOUTS: 'headers=1s' },
    });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`timed out after 1s waiting for response headers from 127.0.0.1:${port} (4 attempts)`);
    // Seconds, where it used to take ten minutes (generous: the machine is shared).
    expect(Date.now() - t0).toBeLessThan(60_000);
  });

  it('a registry that stalls a blob HEAD: the push is retried and succeeds; one that always stalls fails in seconds, naming the host', async () => {
    const ctx = await f.context('stall-push', { Dockerfile: `FROM ${f.base}\nRUN echo pushed-${randomBytes(4).toString('hex')} > /p\n` });
    fault.faults = { stall: { times: 1, method: 'HEAD', path: '/v2/net/once/blobs/' } };
    const ok = await f.build(['--progress', 'plain', '--http-timeouts', 'headers=1s', '-t', `${fault.host}/net/once:1`, '--push', ctx]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(fault.requests.filter((r) => r.fault === 'stall')).toHaveLength(1);

    fault.faults = { stall: { times: 10_000, method: 'HEAD', path: '/v2/net/never/blobs/' } };
    const t0 = Date.now();
    const bad = await f.build(['--progress', 'plain', '--http-timeouts', 'headers=1s', '-t', `${fault.host}/net/never:1`, '--push', ctx]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`timed out after 1s waiting for response headers from ${fault.host} (5 attempts)`);
    expect(Date.now() - t0).toBeLessThan(60_000);
    expect(fault.requests.some((r) => r.method === 'PUT' && r.path.startsWith('/v2/net/never/manifests/'))).toBe(false);
    fault.faults = {};
  });
});
