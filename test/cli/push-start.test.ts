import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCliFixture, type CliFixture } from './fixture.js';

/**
 * A re-push is mostly a Node process starting (issue 18), and each built-in a
 * start loads costs: node:child_process ~3 ms, node:tls and node:https ~10 ms
 * with OpenSSL's set-up. A push to a plain-HTTP registry with no credential
 * helper needs none of them (core/lazy-builtins.ts loads them on first use);
 * one static import of them anywhere on the push path would quietly put them
 * back into every push.
 */
describe('buildlite push: what a re-push loads', () => {
  let f: CliFixture;
  let preload: string;
  let loaded: string;

  beforeAll(async () => {
    f = await startCliFixture('push-start');
    loaded = path.join(f.tmp, 'loaded.txt');
    // Writes, at exit, the built-in modules the process loaded.
    preload = path.join(f.tmp, 'record-builtins.cjs');
    await writeFile(
      preload,
      `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(loaded)}, process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13)).join('\\n')));\n`,
    );
  });
  afterAll(async () => {
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
});
