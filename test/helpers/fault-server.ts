/**
 * A real node:http proxy in front of a real registry that injects faults:
 *
 *   await using fs = await startFaultServer(reg.url, { failUpload: { nth: 2 } });
 *   // push to `${fs.host}/repo:tag`; fs.requests records what arrived
 *
 * Faults (each optional, and `faults` may be changed between requests):
 * - failUpload: from the Nth blob upload (the PUT that completes it) on, `times` (default 1) are
 *   answered 500 and not forwarded; counted from when the fault is set;
 * - resetBlobGet: the next `times` blob GETs send headers and half the body, then the socket is destroyed;
 * - throttle: the next `times` requests (only those whose path starts with `path`, when given) are
 *   answered 429 with `Retry-After: retryAfter`;
 * - corruptBlob: blob GET bodies get one byte flipped (same length);
 * - redirectBlobsTo: blob GETs are answered 307 to the same path on another origin;
 * - stall: the next `times` requests (only those with `method`, and whose path starts with `path`,
 *   when given) are read and never answered: no status line, no headers, the socket held open;
 * - stallBlobBody: the next `times` blob GETs send headers and half the body, then nothing more;
 * - refuseManifest: the next `times` manifest PUTs are answered 400 with the registry error `code`
 *   (naming `detail`), and not forwarded.
 *
 * `startOriginRecorder` is such another origin: it records the Authorization
 * header of whatever arrives and serves it from the registry.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Faults {
  failUpload?: { nth: number; times?: number; status?: number };
  resetBlobGet?: { times: number };
  throttle?: { times: number; retryAfter: number; path?: string };
  corruptBlob?: boolean;
  redirectBlobsTo?: string;
  stall?: { times: number; method?: string; path?: string };
  stallBlobBody?: { times: number };
  refuseManifest?: { times: number; code: string; detail?: string };
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly authorization: string | undefined;
  status?: number;
  fault?: string;
}

export interface FaultServer extends AsyncDisposable {
  /** `127.0.0.1:PORT`. */
  readonly host: string;
  readonly url: string;
  faults: Faults;
  readonly requests: RecordedRequest[];
  stop(): Promise<void>;
}

const isBlobGet = (method: string, p: string) => method === 'GET' && /\/blobs\/sha256:[a-f0-9]{64}$/.test(p.split('?')[0]!);
const isUploadPut = (method: string, p: string) => method === 'PUT' && /\/blobs\/uploads\//.test(p) && /[?&]digest=/.test(p);

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Forward a request upstream; Host is kept so the registry's Location URLs point back at us. */
function forward(upstream: URL, req: http.IncomingMessage, body: Buffer, headers: http.IncomingHttpHeaders = req.headers): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const up = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...headers, 'content-length': String(body.length) } },
      (res) => {
        readBody(res).then((b) => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: b }), reject);
      },
    );
    up.on('error', reject);
    up.end(body);
  });
}

async function listen(server: http.Server): Promise<{ host: string; url: string; stop: () => Promise<void> }> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    }));
  return { host, url: `http://${host}`, stop };
}

export async function startFaultServer(upstreamUrl: string, faults: Faults = {}): Promise<FaultServer> {
  const upstream = new URL(upstreamUrl);
  const requests: RecordedRequest[] = [];
  const uploads = new WeakMap<object, number>();
  const state = { faults };
  const server = http.createServer((req, res) => {
    void (async () => {
      const method = req.method ?? 'GET';
      const p = req.url ?? '/';
      const rec: RecordedRequest = { method, path: p, authorization: req.headers.authorization };
      requests.push(rec);
      // Always read the whole request first: answering early would break the client's upload with EPIPE.
      const body = await readBody(req);
      const f = state.faults;
      if (f.stall && f.stall.times > 0 && (f.stall.method === undefined || f.stall.method === method) && (f.stall.path === undefined || p.startsWith(f.stall.path))) {
        f.stall.times--;
        rec.fault = 'stall';
        return; // never answered: the server's stop() closes the socket
      }
      if (f.throttle && f.throttle.times > 0 && (f.throttle.path === undefined || p.startsWith(f.throttle.path))) {
        f.throttle.times--;
        rec.status = 429;
        rec.fault = 'throttle';
        res.writeHead(429, { 'retry-after': String(f.throttle.retryAfter), 'content-type': 'application/json' });
        res.end('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}');
        return;
      }
      if (f.refuseManifest && f.refuseManifest.times > 0 && method === 'PUT' && /^\/v2\/.+\/manifests\/[^/]+$/.test(p)) {
        f.refuseManifest.times--;
        rec.status = 400;
        rec.fault = 'refuse-manifest';
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: f.refuseManifest.code, message: 'injected manifest refusal', detail: f.refuseManifest.detail ?? '' }] }));
        return;
      }
      const seen = f.failUpload && isUploadPut(method, p) ? (uploads.get(f.failUpload) ?? 0) + 1 : 0;
      if (f.failUpload && seen) uploads.set(f.failUpload, seen);
      if (f.failUpload && seen >= f.failUpload.nth && seen < f.failUpload.nth + (f.failUpload.times ?? 1)) {
        rec.status = f.failUpload.status ?? 500;
        rec.fault = 'fail-upload';
        res.writeHead(rec.status, { 'content-type': 'application/json' });
        res.end('{"errors":[{"code":"UNKNOWN","message":"injected upload failure"}]}');
        return;
      }
      if (isBlobGet(method, p) && f.redirectBlobsTo) {
        rec.status = 307;
        rec.fault = 'redirect';
        res.writeHead(307, { location: `${f.redirectBlobsTo}${p}` }).end();
        return;
      }
      const up = await forward(upstream, req, body);
      rec.status = up.status;
      if (isBlobGet(method, p) && up.status === 200 && f.resetBlobGet && f.resetBlobGet.times > 0) {
        f.resetBlobGet.times--;
        rec.fault = 'reset';
        res.writeHead(200, { ...up.headers, 'content-length': String(up.body.length) });
        res.write(up.body.subarray(0, Math.floor(up.body.length / 2)), () => res.socket?.destroy());
        return;
      }
      if (isBlobGet(method, p) && up.status === 200 && f.stallBlobBody && f.stallBlobBody.times > 0) {
        f.stallBlobBody.times--;
        rec.fault = 'stall-body';
        res.writeHead(200, { ...up.headers, 'content-length': String(up.body.length) });
        res.write(up.body.subarray(0, Math.floor(up.body.length / 2)));
        return; // the rest never comes
      }
      let out = up.body;
      if (isBlobGet(method, p) && up.status === 200 && f.corruptBlob && out.length > 0) {
        rec.fault = 'corrupt';
        out = Buffer.from(out);
        out[out.length - 1] = out[out.length - 1]! ^ 0xff;
      }
      // A HEAD's answer has no body but says the length of the one a GET gets (the blob's size).
      res.writeHead(up.status, { ...up.headers, 'content-length': method === 'HEAD' ? (up.headers['content-length'] ?? '0') : String(out.length) });
      res.end(method === 'HEAD' ? undefined : out);
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(502).end(String(err));
      else res.destroy();
    });
  });
  const l = await listen(server);
  return {
    host: l.host,
    url: l.url,
    get faults() {
      return state.faults;
    },
    set faults(v: Faults) {
      state.faults = v;
    },
    requests,
    stop: l.stop,
    [Symbol.asyncDispose]: l.stop,
  };
}

export interface OriginRecorder extends AsyncDisposable {
  /** `http://127.0.0.1:PORT`, to use as `redirectBlobsTo`. */
  readonly origin: string;
  /** Requests that arrived here, with the Authorization header they carried. */
  readonly requests: RecordedRequest[];
  stop(): Promise<void>;
}

/**
 * "Another origin" (think blob storage behind a redirect): records what arrives,
 * then serves it from the registry with `upstreamAuthorization` (the test's own).
 */
export async function startOriginRecorder(upstreamUrl: string, upstreamAuthorization?: string): Promise<OriginRecorder> {
  const upstream = new URL(upstreamUrl);
  const requests: RecordedRequest[] = [];
  const server = http.createServer((req, res) => {
    void (async () => {
      const rec: RecordedRequest = { method: req.method ?? 'GET', path: req.url ?? '/', authorization: req.headers.authorization };
      requests.push(rec);
      const body = await readBody(req);
      const headers: http.IncomingHttpHeaders = { ...req.headers, host: upstream.host };
      delete headers.authorization;
      if (upstreamAuthorization) headers.authorization = upstreamAuthorization;
      const up = await forward(upstream, req, body, headers);
      rec.status = up.status;
      res.writeHead(up.status, { ...up.headers, 'content-length': String(up.body.length) });
      res.end(up.body);
    })().catch(() => res.destroy());
  });
  const l = await listen(server);
  return { origin: l.url, requests, stop: l.stop, [Symbol.asyncDispose]: l.stop };
}
