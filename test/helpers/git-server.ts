/**
 * Real git repositories served over smart HTTP by `git http-backend` (Debian's
 * git), run as a CGI program behind a node:http server on loopback. Counts
 * what clients ask for, so tests can tell an ls-remote (GET info/refs) from a
 * fetch (POST git-upload-pack), and can require an Authorization header.
 *
 *   await using git = await startGitServer();
 *   const repo = await git.repo('app', { 'Dockerfile': 'FROM …', 'sub/a.txt': 'a' });
 *   await repo.tag('v1');
 *   // https? no: http://127.0.0.1:${git.port}/app.git#v1:sub
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';
import { gunzipSync } from 'node:zlib';

const exec = promisify(execFile);

/** A test's own git identity and a clean config: nothing of the machine's applies. */
const GIT_ENV = {
  PATH: process.env['PATH'] ?? '/usr/bin:/bin',
  HOME: '/dev/null',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 't',
  GIT_AUTHOR_EMAIL: 't@example.com',
  GIT_COMMITTER_NAME: 't',
  GIT_COMMITTER_EMAIL: 't@example.com',
  GIT_AUTHOR_DATE: '2024-01-01T00:00:00Z',
  GIT_COMMITTER_DATE: '2024-01-01T00:00:00Z',
};

export async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await exec('git', ['-c', 'init.defaultBranch=main', ...args], { cwd, env: GIT_ENV });
  return stdout.trim();
}

export interface TestRepo {
  readonly name: string;
  /** The work tree; the server serves its .git. */
  readonly dir: string;
  /** Write files (name → content) and commit them; returns the commit id. */
  commit(files: Record<string, string>, message?: string): Promise<string>;
  /** A lightweight tag (or annotated, with a message) on HEAD. */
  tag(name: string, message?: string): Promise<void>;
  head(): Promise<string>;
}

export interface GitServer extends AsyncDisposable {
  readonly port: number;
  /** Where the repositories are (each NAME a work tree with its .git). */
  readonly root: string;
  /** `http://127.0.0.1:PORT/NAME.git` */
  url(name: string): string;
  repo(name: string, files: Record<string, string>): Promise<TestRepo>;
  /** Requests so far: ref advertisements (ls-remote, and the first leg of a fetch) and pack requests (fetches, not v2 ref listings). */
  readonly counts: { infoRefs: number; uploadPack: number };
  /** Authorization headers seen, in order. */
  readonly authorizations: string[];
  /** When set, requests without exactly this Authorization value get 401. */
  requireAuth?: string;
  stop(): Promise<void>;
}

export async function startGitServer(): Promise<GitServer> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'bl-git-'));
  const sockets = new Set<Socket>();
  const counts = { infoRefs: 0, uploadPack: 0 };
  const authorizations: string[] = [];
  const self: { requireAuth?: string } = {};
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.headers.authorization) authorizations.push(req.headers.authorization);
    if (self.requireAuth !== undefined && req.headers.authorization !== self.requireAuth) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="git"' }).end();
      return;
    }
    if (url.pathname.endsWith('/info/refs')) counts.infoRefs++;
    // Read the request whole (they are small): a pack request is a fetch, unless (protocol v2) it only lists refs.
    const body: Buffer[] = [];
    req.on('data', (c: Buffer) => body.push(c));
    req.on('end', () => {
      const bytes = Buffer.concat(body);
      const text = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(bytes) : bytes).toString('latin1');
      if (url.pathname.endsWith('/git-upload-pack') && !text.includes('command=ls-refs')) counts.uploadPack++;
      cgi(root, req, url, bytes, res);
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(root, { recursive: true, force: true });
    })());
  return Object.assign(self, {
    port,
    root,
    counts,
    authorizations,
    url: (name: string) => `http://127.0.0.1:${port}/${name}.git`,
    repo: (name: string, files: Record<string, string>) => makeRepo(path.join(root, name), files),
    stop,
    [Symbol.asyncDispose]: stop,
  });
}

/** A work tree whose `.git` is served as NAME.git (PATH_INFO maps NAME.git → NAME/.git below). */
async function makeRepo(dir: string, files: Record<string, string>): Promise<TestRepo> {
  await mkdir(dir, { recursive: true });
  await git(dir, 'init', '-q');
  const repo: TestRepo = {
    name: path.basename(dir),
    dir,
    async commit(more, message = 'change') {
      for (const [name, text] of Object.entries(more)) {
        await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
        await writeFile(path.join(dir, name), text);
      }
      await git(dir, 'add', '-A');
      await git(dir, 'commit', '-q', '--allow-empty', '-m', message);
      return repo.head();
    },
    async tag(name, message) {
      await git(dir, 'tag', ...(message !== undefined ? ['-a', '-m', message] : []), name);
    },
    head: () => git(dir, 'rev-parse', 'HEAD'),
  };
  await repo.commit(files, 'initial');
  return repo;
}

/** One CGI exchange with `git http-backend`: request headers as CGI variables, body in, headers and body out. */
function cgi(root: string, req: http.IncomingMessage, url: URL, body: Buffer, res: http.ServerResponse): void {
  // NAME.git/... → NAME/.git/...
  const pathInfo = decodeURIComponent(url.pathname).replace(/^\/([^/]+)\.git(\/|$)/, '/$1/.git$2');
  const child = spawn('git', ['http-backend'], {
    env: {
      ...GIT_ENV,
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: '1',
      PATH_INFO: pathInfo,
      REQUEST_METHOD: req.method ?? 'GET',
      QUERY_STRING: url.search.slice(1),
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      ...(req.headers['content-encoding'] ? { HTTP_CONTENT_ENCODING: req.headers['content-encoding'] } : {}),
      ...(req.headers['git-protocol'] ? { GIT_PROTOCOL: String(req.headers['git-protocol']) } : {}),
      REMOTE_ADDR: req.socket.remoteAddress ?? '',
    },
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  // http-backend may answer and exit before it reads the whole body (a refusal, or a request it needs no body for):
  // the response it wrote is what the client sees, so a closed stdin is not this server's error.
  child.stdin.on('error', () => {});
  child.stdin.end(body);
  let head = Buffer.alloc(0);
  let started = false;
  child.stdout.on('data', (chunk: Buffer) => {
    if (started) {
      res.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n') >= 0 ? head.indexOf('\r\n\r\n') : head.indexOf('\n\n');
    if (end < 0) return;
    const sep = head[end] === 0x0d ? 4 : 2;
    let status = 200;
    for (const line of head.subarray(0, end).toString('latin1').split(/\r?\n/)) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      if (name.toLowerCase() === 'status') status = Number(value.split(' ')[0]);
      else res.setHeader(name, value);
    }
    res.writeHead(status);
    started = true;
    res.write(head.subarray(end + sep));
  });
  child.on('close', () => res.end());
  child.on('error', () => res.destroy());
}

export interface GitDaemon extends AsyncDisposable {
  /** `git://127.0.0.1:PORT/NAME` */
  url(name: string): string;
}

/** `git daemon` (the git:// protocol) serving the same repositories, on a free loopback port. */
export async function startGitDaemon(root: string): Promise<GitDaemon> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const child = spawn('git', ['daemon', '--reuseaddr', '--export-all', '--listen=127.0.0.1', `--port=${port}`, `--base-path=${root}`, root], { env: GIT_ENV, stdio: ['ignore', 'ignore', 'pipe'] });
    const ready = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(true), 800);
      child.once('exit', () => (clearTimeout(t), resolve(false)));
    });
    if (!ready) {
      if (attempt < 5) continue;
      throw new Error('git daemon did not start');
    }
    const stop = async () => {
      child.kill('SIGKILL');
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    };
    return { url: (name) => `git://127.0.0.1:${port}/${name}`, [Symbol.asyncDispose]: stop };
  }
}
