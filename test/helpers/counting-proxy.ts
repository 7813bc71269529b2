/**
 * A plain HTTP pass-through in front of a registry that records every request
 * and keeps the upstream's headers as they are (a HEAD keeps its
 * Content-Length, which a client compares with the blob's size). With
 * `corruptBlobs` set it flips the last byte of blob GET bodies; while
 * `failBlobGets` is above zero, blob GETs are answered 503 (Retry-After: 0,
 * so the client's own retries do not wait) and the counter goes down. With
 * `hideHeadDigests`, HEAD answers lose `Docker-Content-Digest`, as from a
 * registry that does not send it there.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Transform } from 'node:stream';

export interface CountingProxy {
  /** `127.0.0.1:PORT`. */
  readonly host: string;
  readonly requests: Array<{ method: string; path: string; status?: number }>;
  corruptBlobs: boolean;
  failBlobGets: number;
  hideHeadDigests: boolean;
  stop(): Promise<void>;
}

export async function startCountingProxy(upstreamUrl: string): Promise<CountingProxy> {
  const upstream = new URL(upstreamUrl);
  const proxy: CountingProxy = { host: '', requests: [], corruptBlobs: false, failBlobGets: 0, hideHeadDigests: false, stop: async () => undefined };
  const server = http.createServer((req, res) => {
    const rec: { method: string; path: string; status?: number } = { method: req.method ?? 'GET', path: req.url ?? '/' };
    proxy.requests.push(rec);
    if (proxy.failBlobGets > 0 && rec.method === 'GET' && /\/blobs\/sha256:[a-f0-9]{64}$/.test(rec.path.split('?')[0]!)) {
      proxy.failBlobGets--;
      rec.status = 503;
      req.resume();
      res.writeHead(503, { 'retry-after': '0', 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}');
      return;
    }
    const up = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      rec.status = ur.statusCode ?? 502;
      const headers = { ...ur.headers };
      if (proxy.hideHeadDigests && rec.method === 'HEAD') delete headers['docker-content-digest'];
      res.writeHead(rec.status, headers);
      const blobGet = rec.method === 'GET' && /\/blobs\/sha256:[a-f0-9]{64}$/.test(rec.path.split('?')[0]!) && rec.status === 200;
      if (!blobGet || !proxy.corruptBlobs) {
        ur.pipe(res);
        return;
      }
      const total = Number(ur.headers['content-length']);
      let seen = 0;
      ur.pipe(
        new Transform({
          transform(chunk: Buffer, _e, cb) {
            seen += chunk.length;
            if (seen === total) {
              chunk = Buffer.from(chunk);
              chunk[chunk.length - 1] = chunk[chunk.length - 1]! ^ 0xff;
            }
            cb(null, chunk);
          },
        }),
      ).pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return Object.assign(proxy, {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  });
}
