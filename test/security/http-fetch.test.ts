import { mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import http, { type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDigest, sha256 } from '../../core/digest.js';
import { DigestMismatchError, LimitExceededError } from '../../core/streams.js';
import { HttpFetchError, HttpPolicyError, PolicedHttpFetcher } from '../../builder/http-fetch.js';

const BODY = Buffer.from('the fetched file\n'.repeat(100));
const BODY_DIGEST = sha256(BODY);

interface Recorded {
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

/** A real server on one loopback address; it records every request it gets. */
async function serve(host: string, routes: (port: number) => http.RequestListener): Promise<{ server: Server; port: number; seen: Recorded[] }> {
  const seen: Recorded[] = [];
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  const handler = routes(port);
  server.on('request', (req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    handler(req, res);
  });
  return { server, port, seen };
}

describe('ADD <url> fetcher: limits, checksums and the address policy', () => {
  let tmp: string;
  let main: Awaited<ReturnType<typeof serve>>;
  let other: Awaited<ReturnType<typeof serve>>;
  let n = 0;
  const dest = () => path.join(tmp, `f${++n}`);
  const url = (p: string) => `http://127.0.0.1:${main.port}${p}`;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-http-'));
    // A second server on another loopback address: the target of redirects that must never be followed.
    other = await serve('127.0.0.2', () => (_req, res) => res.end('secret metadata'));
    main = await serve('127.0.0.1', () => (req, res) => {
      switch (req.url) {
        case '/file':
          res.setHeader('content-length', BODY.length);
          res.setHeader('content-disposition', 'attachment; filename="../../evil"');
          res.end(BODY);
          return;
        case '/big-declared':
          res.setHeader('content-length', 5000);
          res.end(Buffer.alloc(5000));
          return;
        case '/big-chunked':
          // No content-length: only counting while streaming catches it.
          for (let i = 0; i < 5; i++) res.write(Buffer.alloc(1000));
          res.end();
          return;
        case '/slow':
          res.write('a');
          return; // never ends
        case '/to-other':
          res.writeHead(302, { location: `http://127.0.0.2:${other.port}/meta` }).end();
          return;
        case '/to-metadata':
          res.writeHead(301, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
          return;
        case '/to-v6-loopback':
          res.writeHead(307, { location: `http://[::1]:${other.port}/x` }).end();
          return;
        case '/to-file':
          res.writeHead(302, { location: 'file:///etc/passwd' }).end();
          return;
        case '/to-file-relative':
          res.writeHead(302, { location: '/file' }).end();
          return;
        case '/loop':
          res.writeHead(302, { location: '/loop' }).end();
          return;
        default:
          res.writeHead(404).end('nope');
      }
    });
  });

  afterAll(async () => {
    main?.server.close();
    other?.server.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('fetches into the file, hashing as it streams, and sends no credentials', async () => {
    const f = new PolicedHttpFetcher({ allowPrivate: true });
    const d = dest();
    expect(await f.fetchToFile(url('/file'), d)).toEqual({ digest: BODY_DIGEST, filename: 'evil' });
    expect(await readFile(d)).toEqual(BODY);
    expect((await stat(d)).mode & 0o777).toBe(0o600);
    // The server's Content-Disposition picked no path (only a base name is reported): nothing but our file exists.
    await expect(stat(path.join(tmp, '..', 'evil'))).rejects.toThrow();
    const req = main.seen.find((r) => r.url === '/file')!;
    expect(req.headers.authorization).toBeUndefined();
    expect(req.headers.cookie).toBeUndefined();
    expect(req.headers['proxy-authorization']).toBeUndefined();
  });

  it('enforces --checksum: a match passes, a mismatch fails and leaves no file', async () => {
    const f = new PolicedHttpFetcher({ allowPrivate: true });
    expect((await f.fetchToFile(url('/file'), dest(), { checksum: BODY_DIGEST })).digest).toBe(BODY_DIGEST);
    const d = dest();
    const wrong = parseDigest(`sha256:${'0'.repeat(64)}`);
    const err = await f.fetchToFile(url('/file'), d, { checksum: wrong }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect((err as DigestMismatchError).message).toContain(BODY_DIGEST);
    await expect(stat(d)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('stops at the size limit, declared or streamed, and removes the partial file', async () => {
    const f = new PolicedHttpFetcher({ allowPrivate: true, maxBytes: 1000 });
    for (const p of ['/big-declared', '/big-chunked']) {
      const d = dest();
      await expect(f.fetchToFile(url(p), d)).rejects.toBeInstanceOf(LimitExceededError);
      await expect(stat(d)).rejects.toMatchObject({ code: 'ENOENT' });
    }
  });

  it('stops at the time limit with a clear reason', async () => {
    const f = new PolicedHttpFetcher({ allowPrivate: true, timeoutMs: 300 });
    const d = dest();
    const err = await f.fetchToFile(url('/slow'), d).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LimitExceededError);
    expect((err as Error).message).toMatch(/not finished within 300 ms/);
    await expect(stat(d)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('never writes through a planted symlink at the destination', async () => {
    const f = new PolicedHttpFetcher({ allowPrivate: true });
    const victim = path.join(tmp, 'victim');
    await writeFile(victim, 'untouched');
    const d = dest();
    await symlink(victim, d);
    await expect(f.fetchToFile(url('/file'), d)).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await readFile(victim, 'utf8')).toBe('untouched');
  });

  it('denies loopback, private and link-local addresses by default, in every spelling, before connecting', async () => {
    const strict = new PolicedHttpFetcher();
    const before = main.seen.length;
    const p = main.port;
    for (const u of [
      `http://127.0.0.1:${p}/file`,
      `http://localhost:${p}/file`,
      `http://0x7f.1:${p}/file`,
      `http://2130706433:${p}/file`,
      `http://0.0.0.0:${p}/file`,
      `http://[::1]:${p}/file`,
      `http://[::ffff:127.0.0.1]:${p}/file`,
      'http://169.254.169.254/latest/meta-data/',
      'http://[fe80::1]/',
      'http://10.0.0.1/',
      'http://192.168.1.1/',
      'http://172.16.0.1/',
      'http://[fd00:ec2::254]/',
    ]) {
      const err = await strict.fetchToFile(u, dest()).catch((e: unknown) => e);
      expect(err, u).toBeInstanceOf(HttpPolicyError);
      expect((err as HttpPolicyError).code).toBe('PERMISSION_DENIED');
    }
    expect(main.seen.length).toBe(before);
  });

  it('checks every redirect hop again: a redirect to a denied address is refused and never reached', async () => {
    // The operator allows exactly the first server's address, not the rest of loopback.
    const f = new PolicedHttpFetcher({ allowNetworks: ['127.0.0.1/32'] });
    expect((await f.fetchToFile(url('/to-file-relative'), dest())).digest).toBe(BODY_DIGEST);
    for (const p of ['/to-other', '/to-metadata', '/to-v6-loopback']) {
      const err = await f.fetchToFile(url(p), dest()).catch((e: unknown) => e);
      expect(err, p).toBeInstanceOf(HttpPolicyError);
    }
    expect(other.seen).toEqual([]);
    await expect(f.fetchToFile(url('/to-file'), dest())).rejects.toThrow(/only http and https/);
  });

  it('bounds redirects, refuses other schemes and credentials, reports HTTP errors', async () => {
    const f = new PolicedHttpFetcher({ allowPrivate: true, maxRedirects: 3 });
    await expect(f.fetchToFile(url('/loop'), dest())).rejects.toThrow(/more than 3 redirects/);
    await expect(f.fetchToFile('file:///etc/passwd', dest())).rejects.toBeInstanceOf(HttpPolicyError);
    await expect(f.fetchToFile('ftp://127.0.0.1/x', dest())).rejects.toBeInstanceOf(HttpPolicyError);
    const before = main.seen.length;
    const cred = await f.fetchToFile(`http://user:hunter2@127.0.0.1:${main.port}/file`, dest()).catch((e: unknown) => e);
    expect(cred).toBeInstanceOf(HttpPolicyError);
    expect((cred as Error).message).not.toContain('hunter2');
    expect(main.seen.length).toBe(before);
    const missing = await f.fetchToFile(url('/missing?token=abc'), dest()).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(HttpFetchError);
    expect((missing as HttpFetchError).code).toBe('NOT_FOUND');
    expect((missing as Error).message).toContain('404');
    expect((missing as Error).message).not.toContain('token=abc');
  });

  it('checks options when built', () => {
    expect(() => new PolicedHttpFetcher({ allowNetworks: ['not-an-ip'] })).toThrow(/allowNetworks/);
    expect(() => new PolicedHttpFetcher({ allowNetworks: ['10.0.0.0/33'] })).toThrow(/prefix/);
    expect(() => new PolicedHttpFetcher({ maxBytes: 0 })).toThrow(/maxBytes/);
  });
});
