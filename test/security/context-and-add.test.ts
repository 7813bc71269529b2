import { createHash, randomBytes } from 'node:crypto';
import { readFile, symlink, writeFile } from 'node:fs/promises';
import http, { type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import tarStream from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPushedImage, SecurityEnv } from './harness.js';

/** docs/security.md T4 and T7, through whole builds: context symlinks stay links; ADD <url> is policed and never unpacked. */
describe('context symlinks and ADD <url> in whole builds', () => {
  let env: SecurityEnv;
  let server: Server;
  let port: number;
  const token = randomBytes(6).toString('hex');
  const hostText = `host-only-content-${token}`;
  let marker: string;
  let archive: Buffer;
  let archiveDigest: string;
  let requests = 0;

  beforeAll(async () => {
    env = await SecurityEnv.start();
    marker = path.join(env.tmp, `host-file-${token}`);
    await writeFile(marker, hostText);
    const pack = tarStream.pack();
    pack.entry({ name: 'inside.txt' }, 'would appear if unpacked');
    pack.finalize();
    const chunks: Buffer[] = [];
    for await (const c of pack) chunks.push(c as Buffer);
    archive = gzipSync(Buffer.concat(chunks));
    archiveDigest = `sha256:${createHash('sha256').update(archive).digest('hex')}`;
    server = http.createServer((req, res) => {
      requests++;
      const u = new URL(req.url ?? '/', 'http://x');
      if (u.pathname === '/data.tar.gz') res.end(archive);
      else if (u.pathname === '/redirect') res.writeHead(302, { location: u.searchParams.get('to') ?? '/' }).end();
      else if (u.pathname === '/' || u.pathname === '/named.txt') {
        // A download endpoint that names its file (or not) through Content-Disposition.
        const cd = u.searchParams.get('cd');
        res.writeHead(200, cd !== null ? { 'content-disposition': cd } : {}).end(`served ${u.search}\n`);
      } else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server?.close();
    await env?.stop();
  });

  it('COPY of a context symlink to a host file: the link is resolved inside the context or copied as a link, never read on the host', async () => {
    const ctx = await env.context();
    await symlink(marker, path.join(ctx, 'leak'));
    const { builder } = await env.builder();
    const ref = `${env.registry.host}/sec/ctx-leak:1`;
    const out = await env.build(builder, `FROM ${env.base}\nCOPY leak /x\nRUN readlink /x; cat /x 2>&1; echo checked\n`, {
      context: ctx,
      request: { outputs: [{ type: 'registry', refs: [ref] }] },
    });
    expect(out.logs).not.toContain(hostText);
    if (out.error) {
      // BuildKit's rule: a top-level source link is followed, but inside the context, where its target does not exist.
      expect(out.error.code).toBe('NOT_FOUND');
    } else {
      const x = (await readPushedImage(ref)).layers.flat().find((e) => e.name.replace(/^\.?\//, '') === 'x');
      expect(x?.type).toBe('symlink');
      expect(x?.linkname).toBe(marker);
    }
  });

  it('RUN --mount=type=bind of the context sees it as sent: no file the .dockerignore excludes, links as links, the context untouched', async () => {
    const ctx = await env.context({ '.dockerignore': 'secret.txt\nbuild\n!build/keep.txt\n', 'secret.txt': 'do-not-mount\n', 'keep.txt': 'kept\n', 'build/drop.o': 'o\n', 'build/keep.txt': 'k\n' });
    await symlink(marker, path.join(ctx, 'leak'));
    const { builder } = await env.builder();
    const out = await env.build(
      builder,
      `FROM ${env.base}\nRUN --mount=type=bind,target=/ctx ls -a /ctx /ctx/build; test ! -e /ctx/secret.txt && test ! -e /ctx/build/drop.o && cat /ctx/keep.txt /ctx/build/keep.txt && readlink /ctx/leak && echo view-ok\n`,
      { context: ctx },
    );
    expect(out.error, out.logs).toBeUndefined();
    expect(out.logs).toContain('view-ok');
    expect(out.logs).toContain(marker);
    expect(out.logs).not.toContain('do-not-mount');
    expect(out.logs).not.toContain(hostText);
    // The context itself is as it was (the view is links beside it, never the context rewritten).
    expect(await readFile(path.join(ctx, 'secret.txt'), 'utf8')).toBe('do-not-mount\n');
  });

  it('COPY of a directory holding links to host files copies the links as links', async () => {
    const ctx = await env.context({ 'dir/plain.txt': 'plain' });
    await symlink(marker, path.join(ctx, 'dir', 'leak'));
    await symlink('/etc/passwd', path.join(ctx, 'dir', 'passwd-leak'));
    await symlink('/', path.join(ctx, 'dir', 'root'));
    const { builder } = await env.builder();
    const ref = `${env.registry.host}/sec/ctx-dir:1`;
    const out = await env.build(builder, `FROM ${env.base}\nCOPY dir /d\nRUN readlink /d/leak; cat /d/leak 2>&1; ls /d/root/ >/dev/null; echo checked\n`, {
      context: ctx,
      request: { outputs: [{ type: 'registry', refs: [ref] }] },
    });
    expect(out.error).toBeUndefined();
    expect(out.logs).toContain(marker);
    expect(out.logs).not.toContain(hostText);
    const entries = (await readPushedImage(ref)).layers.flat();
    const byName = (n: string) => entries.find((e) => e.name.replace(/^\.?\//, '') === n);
    expect(byName('d/leak')).toMatchObject({ type: 'symlink', linkname: marker });
    expect(byName('d/passwd-leak')).toMatchObject({ type: 'symlink', linkname: '/etc/passwd' });
    expect(byName('d/root')).toMatchObject({ type: 'symlink', linkname: '/' });
    expect(byName('d/plain.txt')?.data.toString()).toBe('plain');
    for (const e of entries) expect(e.data.includes(hostText), e.name).toBe(false);
  });

  it('COPY through a context symlink to / reads nothing from the host', async () => {
    const ctx = await env.context();
    await symlink('/', path.join(ctx, 'root'));
    const { builder } = await env.builder();
    const ref = `${env.registry.host}/sec/ctx-root:1`;
    const out = await env.build(builder, `FROM ${env.base}\nCOPY root${marker} /y\nRUN cat /y 2>&1; echo checked\n`, {
      context: ctx,
      request: { outputs: [{ type: 'registry', refs: [ref] }] },
    });
    expect(out.logs).not.toContain(hostText);
    if (out.error) {
      expect(out.error.code).toBe('NOT_FOUND');
    } else {
      const img = await readPushedImage(ref);
      for (const e of img.layers.flat()) expect(e.data.includes(hostText), e.name).toBe(false);
    }
    // The same through /etc/passwd: the host's account file never lands.
    const pw = await env.build(builder, `FROM ${env.base}\nCOPY root/etc/passwd /y\nRUN cat /y\n`, { context: ctx });
    const hostPasswd = (await import('node:fs')).readFileSync('/etc/passwd', 'utf8');
    const hostOnlyLine = hostPasswd.split('\n').find((l) => l && !/^(root|app|nobody):/.test(l));
    if (hostOnlyLine) expect(pw.logs).not.toContain(hostOnlyLine);
  });

  it('ADD <url> from loopback is refused by the default policy, naming the line, before any request', async () => {
    const { builder } = await env.builder();
    const before = requests;
    const out = await env.build(builder, `FROM ${env.base}\nRUN echo first\nADD http://127.0.0.1:${port}/data.tar.gz /dl/\n`);
    expect(out.error?.code).toBe('PERMISSION_DENIED');
    expect(out.error?.message).toMatch(/127\.0\.0\.1/);
    expect(requests).toBe(before);
    expect(out.logs).not.toContain('first'); // refused while computing keys, before any step ran
  });

  it('ADD <url> with loopback allowed: fetched as is, never unpacked; --checksum enforced', async () => {
    const { builder } = await env.builder({ httpPolicy: { allowPrivate: true } });
    const ok = await env.build(
      builder,
      `FROM ${env.base}\nADD --checksum=${archiveDigest} http://127.0.0.1:${port}/data.tar.gz /dl/\nRUN ls /dl; sha256sum /dl/data.tar.gz; stat -c '%a' /dl/data.tar.gz\n`,
    );
    expect(ok.error).toBeUndefined();
    expect(ok.logs).toContain(archiveDigest.slice('sha256:'.length));
    expect(ok.logs).not.toContain('inside.txt');
    expect(ok.logs).toMatch(/^600$/m);

    const bad = await env.build(builder, `FROM ${env.base}\nADD --checksum=sha256:${'1'.repeat(64)} http://127.0.0.1:${port}/data.tar.gz /dl/\n`);
    expect(bad.error?.code).toBe('DIGEST_MISMATCH');
  });

  it('errors found while computing keys name the Dockerfile line', async () => {
    const ctx = await env.context();
    await symlink('/', path.join(ctx, 'root'));
    const strict = await env.builder();
    const denied = await env.build(strict.builder, `FROM ${env.base}\nRUN echo first\nADD http://127.0.0.1:${port}/data.tar.gz /dl/\n`);
    const missing = await env.build(strict.builder, `FROM ${env.base}\nCOPY root${marker} /y\n`, { context: ctx });
    const loose = await env.builder({ httpPolicy: { allowPrivate: true } });
    const bad = await env.build(loose.builder, `FROM ${env.base}\nADD --checksum=sha256:${'1'.repeat(64)} http://127.0.0.1:${port}/data.tar.gz /dl/\n`);
    expect([denied.error?.range?.startLine, missing.error?.range?.startLine, bad.error?.range?.startLine]).toEqual([3, 2, 2]);
  });

  it('every loopback spelling is refused by default (service mode), naming the address and the opt-in, before any request', async () => {
    const { builder } = await env.builder();
    for (const host of ['127.0.0.1', '[::ffff:127.0.0.1]', '2130706433', '0x7f.1', '[::1]', 'localhost']) {
      const before = requests;
      const out = await env.build(builder, `FROM ${env.base}\nRUN echo first\nADD http://${host}:${port}/data.tar.gz /dl/\n`);
      expect(out.error?.code, host).toBe('PERMISSION_DENIED');
      expect(out.error?.message).toMatch(/is a loopback address, which URL fetches may not reach; allow it with .*allowPrivate/);
      expect(out.error?.range?.startLine).toBe(3);
      expect(requests).toBe(before);
      expect(out.logs).not.toContain('first');
    }
  });

  it('a redirect into loopback is refused although the first hop was allowed', async () => {
    // The operator allows exactly 127.0.0.1; the redirect goes to 127.0.0.2, spelled as a decimal number.
    const { builder } = await env.builder({ httpPolicy: { allowNetworks: ['127.0.0.1/32'] } });
    const to = encodeURIComponent(`http://2130706434:${port}/data.tar.gz`);
    const out = await env.build(builder, `FROM ${env.base}\nADD http://127.0.0.1:${port}/redirect?to=${to} /dl/x\n`);
    expect(out.error?.code).toBe('PERMISSION_DENIED');
    expect(out.error?.message).toContain('127.0.0.2 is a loopback address');
    const ok = await env.build(builder, `FROM ${env.base}\nADD http://127.0.0.1:${port}/redirect?to=${encodeURIComponent('/data.tar.gz')} /dl/x\nRUN sha256sum /dl/x\n`);
    expect(ok.error).toBeUndefined();
    expect(ok.logs).toContain(archiveDigest.slice('sha256:'.length));
  });

  it('with the opt-in, the numeric and mapped spellings all fetch the same file', async () => {
    const { builder } = await env.builder({ httpPolicy: { allowPrivate: true } });
    const hosts = ['[::ffff:127.0.0.1]', '2130706433', '0x7f.1'];
    const out = await env.build(
      builder,
      `FROM ${env.base}\n${hosts.map((h, i) => `ADD http://${h}:${port}/data.tar.gz /dl${i}/`).join('\n')}\nRUN sha256sum /dl0/data.tar.gz /dl1/data.tar.gz /dl2/data.tar.gz\n`,
    );
    expect(out.error).toBeUndefined();
    expect(out.logs.split(archiveDigest.slice('sha256:'.length)).length - 1).toBe(3);
  });

  it("Content-Disposition names the file when the URL names none; a hostile name stays a base name inside the destination", async () => {
    const { builder } = await env.builder({ httpPolicy: { allowPrivate: true } });
    // Quotes are encoded too: the Dockerfile lexer would take '' as an empty quoted string.
    const cd = (v: string) => `http://127.0.0.1:${port}/?cd=${encodeURIComponent(v).replace(/'/g, '%27')}`;
    const cases: Array<[string, string]> = [
      ['attachment; filename="tool-1.2.tar.gz"', 'a/tool-1.2.tar.gz'],
      ['attachment; filename="../../escaped"', 'b/escaped'],
      ['attachment; filename="/etc/passwd"', 'c/passwd'],
      ["attachment; filename*=UTF-8''..%2F..%2Fescaped2", 'd/escaped2'],
      ['attachment; filename=""', 'e/__unnamed__'],
      ['attachment; filename=".."', 'f/__unnamed__'],
    ];
    const ref = `${env.registry.host}/sec/add-cd:1`;
    const dockerfile = [
      `FROM ${env.base}`,
      ...cases.map(([header, want]) => `ADD ${cd(header)} /dl/${want.split('/')[0]}/`),
      // The URL names a file: BuildKit's rule, the URL's name wins over the header.
      `ADD http://127.0.0.1:${port}/named.txt?cd=${encodeURIComponent('attachment; filename="other.bin"')} /dl/g/`,
      // A destination without a slash is the file's name, whatever the server says.
      `ADD ${cd('attachment; filename="ignored.bin"')} /dl/h`,
      '',
    ].join('\n');
    const out = await env.build(builder, dockerfile, { request: { outputs: [{ type: 'registry', refs: [ref] }] } });
    expect(out.error).toBeUndefined();
    const added = (await readPushedImage(ref)).layers.slice(1).flat().map((e) => e.name.replace(/^\.?\//, '').replace(/\/$/, ''));
    const files = added.filter((n) => n.split('/').length > 2 || n === 'dl/h');
    expect(files.sort()).toEqual([...cases.map(([, want]) => `dl/${want}`), 'dl/g/named.txt', 'dl/h'].sort());
    // Nothing of any ADD layer lies outside /dl.
    for (const name of added) expect(name === 'dl' || name.startsWith('dl/'), name).toBe(true);
  });

  it("the server's file name is part of the source's cache key: a new name is a new step", async () => {
    const { builder } = await env.builder({ httpPolicy: { allowPrivate: true } });
    const df = (name: string) => `FROM ${env.base}\nADD http://127.0.0.1:${port}/?cd=${encodeURIComponent(`attachment; filename="${name}"`)}&same=1 /dl/\nRUN ls /dl\n`;
    // Same bytes both times (the body echoes only the query, which differs): compare the listing instead.
    const first = await env.build(builder, df('one.txt'), { request: { noCache: false } });
    const second = await env.build(builder, df('two.txt'), { request: { noCache: false } });
    expect(first.logs).toContain('one.txt');
    expect(second.logs).toContain('two.txt');
    expect(second.logs).not.toContain('one.txt');
  });

  it('a URL with credentials is refused, and its password is in no event, error or step name', async () => {
    const { builder } = await env.builder({ httpPolicy: { allowPrivate: true } });
    const before = requests;
    const out = await env.build(builder, `FROM ${env.base}\nRUN echo first\nADD http://user:tok3n-${token}@127.0.0.1:${port}/data.tar.gz /dl/\n`);
    expect(out.error?.code).toBe('PERMISSION_DENIED');
    expect(out.error?.message).toContain('URLs with credentials are refused');
    expect(requests).toBe(before);
    expect(JSON.stringify(out.events)).not.toContain(`tok3n-${token}`);
  });

  it('a request from another client whose push target or cache ref carries a password fails before any step, echoing nothing', async () => {
    const { builder } = await env.builder();
    const pw = `Pw-${token}`;
    for (const request of [
      { outputs: [{ type: 'registry' as const, refs: [`user:${pw}@${env.registry.host}/sec/x:1`] }] },
      { outputs: [{ type: 'image' as const, refs: [`${env.registry.host}/sec/ok:1`, `${pw}@${env.registry.host}/sec/y:1`] }] },
      { cacheTo: [{ type: 'registry' as const, ref: `user:${pw}@${env.registry.host}/sec/cache:1` }] },
    ]) {
      const out = await env.build(builder, `FROM ${env.base}\nRUN echo step-$((6*7))\n`, { request });
      expect(out.error?.code).toBe('INVALID_ARGUMENT');
      expect(out.error?.message).toContain('carries credentials');
      expect(out.events.some((e) => e.type === 'vertex')).toBe(false);
      expect(JSON.stringify(out.events)).not.toContain(pw);
    }
  });
});
