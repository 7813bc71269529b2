import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFaultServer, type FaultServer } from '../helpers/fault-server.js';
import { startCliFixture, type CliFixture } from './fixture.js';

/**
 * A re-push or a build whose every step is cached is mostly a Node process
 * starting (issue 18), and each built-in a start loads costs: node:child_process
 * ~3 ms, node:zlib ~2 ms, node:dns/promises ~1 ms, node:tls and node:https ~10 ms
 * with OpenSSL's set-up. Neither command needs them against a plain-HTTP
 * registry (core/lazy-builtins.ts loads them on first use); one static import
 * of them anywhere on these paths would quietly put them back into every run.
 * Also: a re-push is one request, and so is a cached build's look at its base.
 */
describe('short commands: what they load and send', () => {
  let f: CliFixture;
  let preload: string;
  let loaded: string;
  let proxy: FaultServer;

  beforeAll(async () => {
    f = await startCliFixture('push-start');
    loaded = path.join(f.tmp, 'loaded.txt');
    // Writes, at exit, the built-in modules the process loaded.
    // No faults: it records what the pushes send to the real registry behind it.
    proxy = await startFaultServer(f.registry.url);
    preload = path.join(f.tmp, 'record-builtins.cjs');
    await writeFile(
      preload,
      `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(loaded)}, process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13)).join('\\n')));\n`,
    );
  });
  afterAll(async () => {
    await proxy?.stop();
    await f?.close();
  });

  it('a push and a re-push to a plain-HTTP registry load neither child_process nor TLS', async () => {
    const ctx = await f.context('start', { 'a.txt': 'a\n', Dockerfile: `FROM ${f.base}\nCOPY a.txt /a.txt\n` });
    const ref = `${f.registry.host}/cli/start:1`;
    const b = await f.build(['--progress', 'plain', '-t', ref, ctx]);
    expect(b.code, b.stderr).toBe(0);

    for (const what of ['push', 're-push']) {
      const p = await f.cli(['push', '--root', f.root, ref], { env: { NODE_OPTIONS: `--require ${preload}` } });
      expect(p.code, `${what}: ${p.stderr}`).toBe(0);
      expect(p.stdout).toMatch(/@sha256:[0-9a-f]{64}/);
      const modules = (await readFile(loaded, 'utf8')).split('\n');
      // The record is real: the push's own modules are in it.
      expect(modules).toContain('http');
      expect(modules).toContain('crypto');
      for (const m of ['child_process', 'tls', 'https']) expect(modules, `${what} loaded ${m}`).not.toContain(m);
    }
  });

  it('a build whose every step is cached loads no child_process, zlib, DNS resolver, readline or TLS; one that runs a step does', async () => {
    const ctx = await f.context('cached', { 'c.txt': 'c\n', Dockerfile: `FROM ${f.base}\nCOPY c.txt /c.txt\nRUN cat /c.txt > /d.txt\n` });
    const env = { NODE_OPTIONS: `--require ${preload}` };
    const ran = await f.build(['--progress', 'plain', '-t', `${f.registry.host}/cli/cached:1`, ctx], { env });
    expect(ran.code, ran.stderr).toBe(0);
    const ranModules = (await readFile(loaded, 'utf8')).split('\n');
    // The record could fail: a build that runs a step loads them.
    for (const m of ['child_process', 'zlib']) expect(ranModules, `a build that ran a step without ${m}?`).toContain(m);

    const cached = await f.build(['--progress', 'plain', '-t', `${f.registry.host}/cli/cached:1`, ctx], { env });
    expect(cached.code, cached.stderr).toBe(0);
    expect(cached.stderr).toMatch(/CACHED/);
    const modules = (await readFile(loaded, 'utf8')).split('\n');
    expect(modules).toContain('http');
    for (const m of ['child_process', 'zlib', 'dns/promises', 'readline', 'tls', 'https']) expect(modules, `a cached build loaded ${m}`).not.toContain(m);
  });

  it('a build whose every step is cached asks the registry once, with a HEAD of the base: no manifest GET counts as a pull', async () => {
    const base = f.base.replace(f.registry.host, proxy.host);
    const ctx = await f.context('one-head', { 'h.txt': 'h\n', Dockerfile: `FROM ${base}\nCOPY h.txt /h.txt\nRUN cat /h.txt > /i.txt\n` });
    const first = await f.build(['--progress', 'plain', ctx]);
    expect(first.code, first.stderr).toBe(0);
    // The record could fail: the first build fetched the base's manifest.
    expect(proxy.requests.some((r) => r.method === 'GET' && r.path.includes('/manifests/'))).toBe(true);

    proxy.requests.length = 0;
    const cached = await f.build(['--progress', 'plain', ctx]);
    expect(cached.code, cached.stderr).toBe(0);
    expect(cached.stderr).toMatch(/CACHED/);
    const { repository, tag } = /^[^/]+\/(?<repository>[^:]+):(?<tag>.+)$/.exec(base)!.groups!;
    expect(proxy.requests.map((r) => [r.method, r.path, r.status])).toEqual([['HEAD', `/v2/${repository}/manifests/${tag}`, 200]]);
  });

  it('a re-push is one request: the GET of the manifest, with no ping of /v2/ before it', async () => {
    const ctx = await f.context('one-request', { 'b.txt': 'b\n', Dockerfile: `FROM ${f.base}\nCOPY b.txt /b.txt\n` });
    const ref = `${proxy.host}/cli/one:1`;
    const b = await f.build(['--progress', 'plain', '-t', ref, ctx]);
    expect(b.code, b.stderr).toBe(0);

    proxy.requests.length = 0;
    const first = await f.cli(['push', '--root', f.root, ref]);
    expect(first.code, first.stderr).toBe(0);
    // The push's first request (is the tag there?) doubles as the probe of the registry's scheme.
    expect(proxy.requests[0]).toMatchObject({ method: 'GET', path: '/v2/cli/one/manifests/1', status: 404 });
    expect(proxy.requests.filter((r) => r.path === '/v2/')).toEqual([]);
    expect(proxy.requests.some((r) => r.method === 'PUT' && r.path === '/v2/cli/one/manifests/1' && r.status === 201)).toBe(true);

    proxy.requests.length = 0;
    const again = await f.cli(['push', '--root', f.root, ref]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toBe(first.stdout);
    expect(proxy.requests.map((r) => [r.method, r.path, r.status])).toEqual([['GET', '/v2/cli/one/manifests/1', 200]]);
  });
});
