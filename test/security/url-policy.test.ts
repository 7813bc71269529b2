import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import type http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../core/digest.js';
import { contentDispositionFilename } from '../../builder/content-disposition.js';
import { HttpFetchError, HttpPolicyError, PolicedHttpFetcher, type Resolve } from '../../builder/http-fetch.js';
import { startFileServer, type FileServer } from '../helpers/file-server.js';

/**
 * docs/security.md T7 at the fetcher: which addresses `ADD <url>` may reach (every
 * numeric spelling, IPv6 forms, names that resolve to loopback, redirects),
 * the server's file name, and stalls. Real node:http servers on loopback.
 */

const BODY = Buffer.from('policed body\n'.repeat(50));
const BODY_DIGEST = sha256(BODY);

/** A resolver that answers from a table: public-looking names can point anywhere without touching the system. */
function table(entries: Record<string, Array<[string, 4 | 6]>>): Resolve {
  return async (host) => {
    const e = entries[host];
    if (!e) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return e.map(([address, family]) => ({ address, family }));
  };
}

describe('ADD <url> address policy, file names and stalls', () => {
  let tmp: string;
  let v4: FileServer;
  let v6: FileServer;
  let n = 0;
  const dest = () => path.join(tmp, `f${++n}`);
  const stallCount = new Map<string, number>();

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-urlpol-'));
    const handler: http.RequestListener = (req, res) => {
      const u = new URL(req.url ?? '/', 'http://x');
      switch (u.pathname) {
        case '/file':
          res.end(BODY);
          return;
        case '/redirect':
          // Redirect to whatever the test names, spelled as the test spells it.
          res.writeHead(302, { location: u.searchParams.get('to') ?? '/' }).end();
          return;
        case '/stall-headers': {
          // Read the request, never answer, `times` times per key; then answer.
          const key = u.searchParams.get('key') ?? '';
          const left = stallCount.get(key) ?? 0;
          if (left > 0) {
            stallCount.set(key, left - 1);
            return;
          }
          res.end(BODY);
          return;
        }
        case '/stall-body': {
          const key = u.searchParams.get('key') ?? '';
          const left = stallCount.get(key) ?? 0;
          res.writeHead(200, { 'content-length': String(BODY.length) });
          if (left > 0) {
            stallCount.set(key, left - 1);
            res.write(BODY.subarray(0, 10)); // then nothing
            return;
          }
          res.end(BODY);
          return;
        }
        default:
          res.writeHead(404).end();
      }
    };
    v4 = await startFileServer('127.0.0.1', handler);
    v6 = await startFileServer('::1', handler);
  });
  afterAll(async () => {
    await Promise.all([v4?.stop(), v6?.stop()]);
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it.each([
    ['dotted quad', (p: number) => `http://127.0.0.1:${p}/file`, '127.0.0.1', 'loopback'],
    ['IPv4-mapped IPv6', (p: number) => `http://[::ffff:127.0.0.1]:${p}/file`, '::ffff:7f00:1', 'loopback'],
    ['mapped, hex groups', (p: number) => `http://[::ffff:7f00:1]:${p}/file`, '::ffff:7f00:1', 'loopback'],
    ['decimal', (p: number) => `http://2130706433:${p}/file`, '127.0.0.1', 'loopback'],
    ['hex, short form', (p: number) => `http://0x7f.1:${p}/file`, '127.0.0.1', 'loopback'],
    ['hex, one number', (p: number) => `http://0x7f000001:${p}/file`, '127.0.0.1', 'loopback'],
    ['octal', (p: number) => `http://0177.0.0.1:${p}/file`, '127.0.0.1', 'loopback'],
    ['octal, one number', (p: number) => `http://017700000001:${p}/file`, '127.0.0.1', 'loopback'],
    ['short form', (p: number) => `http://127.1:${p}/file`, '127.0.0.1', 'loopback'],
    ['trailing dot', (p: number) => `http://127.0.0.1.:${p}/file`, '127.0.0.1', 'loopback'],
    ['percent-encoded', (p: number) => `http://%31%32%37.0.0.1:${p}/file`, '127.0.0.1', 'loopback'],
    ['fullwidth digits and dots', (p: number) => `http://１２７。０。０。１:${p}/file`, '127.0.0.1', 'loopback'],
    ['IPv6 loopback', (p: number) => `http://[::1]:${p}/file`, '::1', 'loopback'],
    ['IPv6 loopback, long form', (p: number) => `http://[0:0:0:0:0:0:0:1]:${p}/file`, '::1', 'loopback'],
    ['IPv4-compatible IPv6', (p: number) => `http://[::127.0.0.1]:${p}/file`, '::7f00:1', 'IPv4-embedding'],
    ['NAT64', (p: number) => `http://[64:ff9b::127.0.0.1]:${p}/file`, '64:ff9b::7f00:1', 'IPv4-embedding'],
    ['unspecified', (p: number) => `http://0.0.0.0:${p}/file`, '0.0.0.0', 'unspecified'],
    ['unspecified, one digit', (p: number) => `http://0:${p}/file`, '0.0.0.0', 'unspecified'],
    ['IPv6 unspecified', (p: number) => `http://[::]:${p}/file`, '::', 'unspecified'],
    ['cloud metadata', () => 'http://169.254.169.254/latest/meta-data/', '169.254.169.254', 'link-local'],
    ['mapped metadata', () => 'http://[::ffff:169.254.169.254]/', '::ffff:a9fe:a9fe', 'link-local'],
    ['RFC 1918', () => 'http://10.1.2.3/', '10.1.2.3', 'private'],
    ['RFC 1918, decimal', () => 'http://3232235777/', '192.168.1.1', 'private'],
    ['carrier-grade NAT', () => 'http://100.100.100.200/', '100.100.100.200', 'shared (carrier-grade NAT)'],
    ['unique local', () => 'http://[fd00:ec2::254]/', 'fd00:ec2::254', 'private'],
    ['IPv6 link-local', () => 'http://[fe80::1]/', 'fe80::1', 'link-local'],
  ])('%s is refused by default, before any request, saying how to allow it', async (_name, url, address, kind) => {
    const f = new PolicedHttpFetcher({ deniedHint: 'pass --allow-it' });
    const before = v4.seen.length + v6.seen.length;
    const d = dest();
    const err = await f.fetchToFile(url(v4.port), d).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpPolicyError);
    expect((err as HttpPolicyError).code).toBe('PERMISSION_DENIED');
    expect((err as Error).message).toContain(`${address} is a ${kind} address, which URL fetches may not reach; pass --allow-it`);
    expect(v4.seen.length + v6.seen.length).toBe(before);
    await expect(stat(d)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('the opt-in reaches loopback in every spelling, IPv6 included', async () => {
    const f = new PolicedHttpFetcher({ allowPrivate: true });
    const p = v4.port;
    for (const u of [`http://127.0.0.1:${p}/file`, `http://2130706433:${p}/file`, `http://0x7f.1:${p}/file`, `http://[::ffff:127.0.0.1]:${p}/file`]) {
      expect((await f.fetchToFile(u, dest())).digest, u).toBe(BODY_DIGEST);
    }
    expect((await f.fetchToFile(`http://[::1]:${v6.port}/file`, dest())).digest).toBe(BODY_DIGEST);
    expect(v6.seen.at(-1)?.url).toBe('/file');
  });

  it('a public-looking name that resolves to loopback is refused; with the opt-in the connection goes to the checked address', async () => {
    const names = table({
      'files.example.com': [['127.0.0.1', 4]],
      'mixed.example.com': [['93.184.215.14', 4], ['127.0.0.1', 4]],
      'v6.example.com': [['::1', 6]],
    });
    const strict = new PolicedHttpFetcher({}, names);
    const before = v4.seen.length + v6.seen.length;
    for (const [host, shown] of [['files.example.com', '127.0.0.1'], ['mixed.example.com', '127.0.0.1'], ['v6.example.com', '::1']] as const) {
      const err = await strict.fetchToFile(`http://${host}:${v4.port}/file`, dest()).catch((e: unknown) => e);
      expect(err, host).toBeInstanceOf(HttpPolicyError);
      expect((err as Error).message).toContain(`${host} (${shown}) is a loopback address`);
    }
    expect(v4.seen.length + v6.seen.length).toBe(before);

    const open = new PolicedHttpFetcher({ allowPrivate: true }, names);
    expect((await open.fetchToFile(`http://files.example.com:${v4.port}/file`, dest())).digest).toBe(BODY_DIGEST);
    // Pinned: our server got it, under the URL's own Host.
    expect(v4.seen.at(-1)?.headers.host).toBe(`files.example.com:${v4.port}`);
  });

  it('every redirect hop is checked again, whatever the spelling of the Location', async () => {
    // The first hop is allowed on purpose (exactly 127.0.0.1); every target below is loopback too, but not allowed.
    const names = table({ 'inner.example.com': [['127.0.0.2', 4]] });
    const f = new PolicedHttpFetcher({ allowNetworks: ['127.0.0.1/32'] }, names);
    const p = v4.port;
    const start = (to: string) => `http://127.0.0.1:${p}/redirect?to=${encodeURIComponent(to)}`;
    expect((await f.fetchToFile(start(`http://127.0.0.1:${p}/file`), dest())).digest).toBe(BODY_DIGEST);
    for (const [to, shown] of [
      [`http://2130706434:${p}/file`, '127.0.0.2'],
      [`http://0x7f.0.0.2:${p}/file`, '127.0.0.2'],
      [`http://[::ffff:127.0.0.2]:${p}/file`, '::ffff:7f00:2'],
      [`http://[::1]:${v6.port}/file`, '::1'],
      [`http://inner.example.com:${p}/file`, 'inner.example.com (127.0.0.2)'],
      ['http://169.254.169.254/latest/meta-data/', '169.254.169.254'],
    ]) {
      const before = v6.seen.length;
      const err = await f.fetchToFile(start(to!), dest()).catch((e: unknown) => e);
      expect(err, to).toBeInstanceOf(HttpPolicyError);
      expect((err as Error).message).toContain(`${shown} is a`);
      expect(v6.seen.length).toBe(before);
    }
  });

  it('reports the server-suggested name as a safe base name, never a path', async () => {
    await using cd = await startFileServer('127.0.0.1', (req, res) => {
      res.setHeader('content-disposition', decodeURIComponent(new URL(req.url ?? '/', 'http://x').searchParams.get('cd') ?? ''));
      res.end(BODY);
    });
    const f = new PolicedHttpFetcher({ allowPrivate: true });
    const got = async (header: string) => (await f.fetchToFile(`http://127.0.0.1:${cd.port}/?cd=${encodeURIComponent(header)}`, dest())).filename;
    expect(await got('attachment; filename="tool-1.2.tar.gz"')).toBe('tool-1.2.tar.gz');
    expect(await got('attachment; filename="../../etc/cron.d/evil"')).toBe('evil');
    expect(await got('attachment; filename="/etc/passwd"')).toBe('passwd');
    expect(await got('attachment; filename=".."')).toBeUndefined();
    expect(await got('attachment; filename=""')).toBeUndefined();
  });

  it.each([
    ['attachment; filename="a.tar.gz"', 'a.tar.gz'],
    ['attachment; filename=plain.txt', 'plain.txt'],
    ['inline; FILENAME="upper.bin"', 'upper.bin'],
    ['attachment; filename="quoted \\"name\\".txt"', 'quoted "name".txt'],
    ["attachment; filename=\"fallback.txt\"; filename*=UTF-8''na%C3%AFve%20file.txt", 'naïve file.txt'],
    ["attachment; filename*=UTF-8''..%2F..%2Fescape.sh", 'escape.sh'],
    ["attachment; filename*=iso-8859-1''latin.txt; filename=used.txt", 'used.txt'],
    ['attachment; filename="a/b/c.txt"', 'c.txt'],
    ['attachment; filename="  spaced.txt  "', 'spaced.txt'],
    ['attachment; filename="dir/"', undefined],
    ['attachment; filename="."', undefined],
    ['attachment; filename="../"', undefined],
    ['attachment; filename="/"', undefined],
    ['attachment; filename="   "', undefined],
    ['attachment; filename="a\u0007b"', undefined],
    ["attachment; filename*=UTF-8''a%00b", undefined],
    ["attachment; filename*=UTF-8''a%0Ab", undefined],
    [`attachment; filename="${'n'.repeat(256)}"`, undefined],
    ['attachment; filename="a.txt"; filename="b.txt"', undefined],
    ['attachment; filename="unterminated', undefined],
    ['attachment; filename=two words.txt', undefined],
    ['attachment', undefined],
    ['', undefined],
    ['attachment; filename="ok.txt";', 'ok.txt'],
  ])('Content-Disposition %j names %j', (header, want) => {
    expect(contentDispositionFilename(header)).toBe(want);
  });

  it('a server that never sends response headers is retried after the headers timeout, then the fetch succeeds', async () => {
    stallCount.set('once', 1);
    const f = new PolicedHttpFetcher({ allowPrivate: true, timeouts: { headersMs: 500 } });
    const t0 = Date.now();
    const d = dest();
    expect((await f.fetchToFile(`http://127.0.0.1:${v4.port}/stall-headers?key=once`, d)).digest).toBe(BODY_DIGEST);
    expect(await readFile(d)).toEqual(BODY);
    expect(stallCount.get('once')).toBe(0);
    expect(Date.now() - t0).toBeLessThan(20_000);
  });

  it('a server that never answers fails fast, naming the phase, the host and the attempts, and leaves no file', async () => {
    stallCount.set('always', 1000);
    const f = new PolicedHttpFetcher({ allowPrivate: true, retries: 1, timeouts: { headersMs: 500 } });
    const d = dest();
    const t0 = Date.now();
    const err = await f.fetchToFile(`http://127.0.0.1:${v4.port}/stall-headers?key=always&token=abc`, d).catch((e: unknown) => e);
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(err).toBeInstanceOf(HttpFetchError);
    expect((err as HttpFetchError).code).toBe('LIMIT_EXCEEDED');
    expect((err as HttpFetchError).retryable).toBe(true);
    expect((err as Error).message).toContain(`timed out after 0.5s waiting for response headers from 127.0.0.1:${v4.port} (2 attempts)`);
    expect((err as Error).message).not.toContain('token=abc');
    expect(stallCount.get('always')).toBe(998);
    await expect(stat(d)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a body that stops coming is abandoned after the idle timeout and fetched again from the start', async () => {
    stallCount.set('body', 1);
    const f = new PolicedHttpFetcher({ allowPrivate: true, timeouts: { idleMs: 500 } });
    const d = dest();
    expect((await f.fetchToFile(`http://127.0.0.1:${v4.port}/stall-body?key=body`, d)).digest).toBe(BODY_DIGEST);
    expect(await readFile(d)).toEqual(BODY);
    stallCount.set('body2', 1000);
    const g = new PolicedHttpFetcher({ allowPrivate: true, retries: 0, timeouts: { idleMs: 500 } });
    const err = await g.fetchToFile(`http://127.0.0.1:${v4.port}/stall-body?key=body2`, dest()).catch((e: unknown) => e);
    expect((err as Error).message).toContain(`timed out after 0.5s with no progress receiving the response body from 127.0.0.1:${v4.port}`);
  });

  it('a TLS server that accepts but never finishes the handshake fails the connect phase', async () => {
    // TCP is accepted and then nothing: for https the connection is only up after the TLS handshake.
    const held = new Set<net.Socket>();
    const silent = net.createServer((sock) => {
      held.add(sock);
      sock.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const p = (silent.address() as net.AddressInfo).port;
    try {
      const f = new PolicedHttpFetcher({ allowPrivate: true, retries: 1, timeouts: { connectMs: 500 } });
      const err = await f.fetchToFile(`https://127.0.0.1:${p}/file`, dest()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HttpFetchError);
      expect((err as Error).message).toContain(`timed out after 0.5s connecting to 127.0.0.1:${p} (2 attempts)`);
      expect(held.size).toBe(2);
    } finally {
      for (const sock of held) sock.destroy();
      silent.close();
    }
  });

  it('checks the policy when built', () => {
    expect(() => new PolicedHttpFetcher({ allowNetworks: ['not-an-ip'] })).toThrow(/allowNetworks/);
    expect(() => new PolicedHttpFetcher({ allowNetworks: ['10.0.0.0/33'] })).toThrow(/prefix/);
    expect(() => new PolicedHttpFetcher({ retries: -1 })).toThrow(/retries/);
    expect(() => new PolicedHttpFetcher({ timeouts: { idleMs: 5 } })).toThrow(/idle timeout/);
  });
});
