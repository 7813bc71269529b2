/**
 * What a registry answers is untrusted: documents over their limit are
 * refused from the Content-Length before the body is read, an error body over
 * the cap is said to be one (not silently dropped), and an index without the
 * wanted platform says "platform" and lists what it has. A real node:http
 * server plays the registry (a real one cannot be made to answer like this).
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MediaType } from '../../core/oci.js';
import { RegistryClient } from '../../registry-client/index.js';

describe('hostile registry answers', () => {
  let server: http.Server;
  let host: string;
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [{ mediaType: MediaType.OciManifest, digest: `sha256:${'a'.repeat(64)}`, size: 500, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }],
    }),
  );
  const sockets = new Set<import('node:net').Socket>();

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const p = req.url ?? '';
      if (p === '/v2/') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      if (p.startsWith('/v2/big-error/')) {
        const body = JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'x'.repeat(100 << 10) }] });
        return void res.writeHead(404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
      }
      if (p.startsWith('/v2/huge/')) {
        // Announces 5 MiB, sends a little, then stalls: only the header may decide.
        res.writeHead(200, { 'content-type': MediaType.OciManifest, 'content-length': String(5 << 20) });
        res.write('{"schemaVersion":2,');
        return;
      }
      if (p.startsWith('/v2/arm-only/')) {
        const digest = `sha256:${createHash('sha256').update(index).digest('hex')}`;
        return void res.writeHead(200, { 'content-type': MediaType.OciIndex, 'content-length': index.length, 'docker-content-digest': digest }).end(index);
      }
      res.writeHead(404).end();
    });
    server.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server?.close(r));
  });

  async function resolveError(repo: string): Promise<Error> {
    const client = new RegistryClient({ insecureRegistries: [host] });
    try {
      return await client.resolve(`${host}/${repo}:1`).then(
        () => new Error('resolved'),
        (err: Error) => err,
      );
    } finally {
      await client.close();
    }
  }

  it('a manifest announced at 5 MiB is refused from its Content-Length, naming the limit', async () => {
    const err = await resolveError('huge');
    expect(err).toMatchObject({ code: 'LIMIT_EXCEEDED' });
    expect(err.message).toMatch(/manifest .*huge.* is 5 MiB: over the 4 MiB limit on manifests/);
  });

  it('an error body over 64 KiB is reported as such, with the status', async () => {
    const err = await resolveError('big-error');
    expect(err.message).toMatch(/HTTP 404/);
    expect(err.message).toMatch(/the registry's error body was over 64 KiB and was not read/);
  });

  it('an index without the wanted platform says "platform" and lists the ones it has', async () => {
    const err = await resolveError('arm-only');
    expect(err.message).toMatch(/has no image for platform linux\/amd64 \(its platforms: linux\/arm64\)/);
  });
});
