/**
 * A real node:http server for `ADD <url>` tests: records what arrives and can
 * leave requests unanswered (stalls), so stopping it destroys every socket it
 * still holds.
 *
 *   await using s = await startFileServer('127.0.0.1', (req, res) => res.end('x'));
 *   // fetch http://127.0.0.1:${s.port}/...; s.seen lists the requests
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface SeenRequest {
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

export interface FileServer extends AsyncDisposable {
  readonly port: number;
  /** Every request, in arrival order. */
  readonly seen: SeenRequest[];
  stop(): Promise<void>;
}

/** Listens on `host` (`'::'` for both families), port 0. */
export async function startFileServer(host: string, handler: http.RequestListener): Promise<FileServer> {
  const seen: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    handler(req, res);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }));
  return { port: (server.address() as AddressInfo).port, seen, stop, [Symbol.asyncDispose]: stop };
}
