/**
 * A real, disposable `docker-registry` (Debian's distribution 2.8) for tests.
 *
 *   await using reg = await startRegistry();                       // plain HTTP
 *   await using reg = await startRegistry({ tls: true, htpasswd: { user: 'u', password: 'p' } });
 *   await using reg = await startRegistry({ tokenAuth: { realm, service, issuer, rootCertFile } });
 *
 * Each registry gets its own temp dir (config, storage, certificates), a free
 * loopback port, `delete: enabled: true`, and is killed and removed on stop().
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { freePort } from './ports.js';
import { makeTestPki } from './tls.js';

export interface StartRegistryOptions {
  /** Basic auth with one user (bcrypt htpasswd generated here). */
  readonly htpasswd?: { readonly user: string; readonly password: string };
  /** Serve HTTPS with a test CA made at start; `caFile` is then set. */
  readonly tls?: boolean;
  /** Bearer token auth (registry `auth.token`); the token server is the test's. */
  readonly tokenAuth?: { readonly realm: string; readonly service: string; readonly issuer: string; readonly rootCertFile: string };
}

export interface TestRegistry extends AsyncDisposable {
  /** `127.0.0.1:PORT`, the registry part of a reference. */
  readonly host: string;
  /** `http://…` or `https://…`. */
  readonly url: string;
  /** Temp dir holding config, storage and certificates. */
  readonly dir: string;
  /** The test CA when started with `tls: true`. */
  readonly caFile?: string;
  stop(): Promise<void>;
}

const BIN = process.env.BUILDLITE_DOCKER_REGISTRY ?? 'docker-registry';
const START_TIMEOUT_MS = 15_000;

/** A bcrypt htpasswd line, via libxcrypt's crypt() through perl (no apache2-utils needed). */
export async function bcryptHtpasswd(user: string, password: string): Promise<string> {
  const alphabet = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(21);
  // The 22nd salt character carries only 2 bits: keep it canonical.
  const salt = [...bytes].map((b) => alphabet[b % 64]).join('') + '.Oeu'[bytes[0]! % 4];
  const hash = await new Promise<string>((resolve, reject) => {
    // The password goes through stdin, not argv.
    const child = execFile('perl', ['-e', 'my $p = <STDIN>; chomp $p; print crypt($p, $ARGV[0])', `$2y$05$${salt}`], (err, stdout) =>
      err ? reject(err) : resolve(stdout.trim()),
    );
    child.stdin?.end(`${password}\n`);
  });
  if (!hash.startsWith('$2y$') && !hash.startsWith('$2b$')) {
    throw new Error('this libc has no bcrypt crypt(); install apache2-utils and use htpasswd -B');
  }
  return `${user}:${hash}`;
}

function ping(url: string, ca: string | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const mod = url.startsWith('https:') ? https : http;
    const req = mod.get(`${url}/v2/`, { ...(ca ? { ca } : {}), timeout: 1000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'buildlite-registry-'));
  try {
    let caFile: string | undefined;
    const http: Record<string, unknown> = { secret: randomBytes(16).toString('hex'), headers: { 'X-Content-Type-Options': ['nosniff'] } };
    if (opts.tls) {
      const pki = await makeTestPki(dir);
      caFile = pki.caFile;
      http.tls = { certificate: pki.certFile, key: pki.keyFile };
    }
    let auth: Record<string, unknown> | undefined;
    if (opts.htpasswd) {
      const file = path.join(dir, 'htpasswd');
      await writeFile(file, `${await bcryptHtpasswd(opts.htpasswd.user, opts.htpasswd.password)}\n`, { mode: 0o600 });
      auth = { htpasswd: { realm: 'buildlite-test', path: file } };
    } else if (opts.tokenAuth) {
      const t = opts.tokenAuth;
      auth = { token: { realm: t.realm, service: t.service, issuer: t.issuer, rootcertbundle: t.rootCertFile } };
    }
    const ca = caFile ? await readFile(caFile, 'utf8') : undefined;
    let lastLog = '';
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      const host = `127.0.0.1:${port}`;
      const config = {
        version: 0.1,
        log: { level: 'warn', accesslog: { disabled: true } },
        storage: { filesystem: { rootdirectory: path.join(dir, 'data') }, delete: { enabled: true }, maintenance: { uploadpurging: { enabled: false } } },
        http: { ...http, addr: host },
        ...(auth ? { auth } : {}),
      };
      const configFile = path.join(dir, 'config.yml');
      await writeFile(configFile, stringify(config));
      const child = spawn(BIN, ['serve', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
      let log = '';
      const onData = (b: Buffer) => {
        log = (log + b.toString()).slice(-8192);
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      const url = `${opts.tls ? 'https' : 'http'}://${host}`;
      const deadline = Date.now() + START_TIMEOUT_MS;
      let up = false;
      while (Date.now() < deadline && child.exitCode === null) {
        if (await ping(url, ca)) {
          up = true;
          break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      if (!up) {
        await stopProcess(child);
        lastLog = log;
        if (/address already in use/.test(log)) continue;
        throw new Error(`docker-registry did not start: ${log.slice(-2000)}`);
      }
      let stopped: Promise<void> | undefined;
      const stop = () =>
        (stopped ??= (async () => {
          await stopProcess(child);
          await rm(dir, { recursive: true, force: true });
        })());
      return { host, url, dir, ...(caFile ? { caFile } : {}), stop, [Symbol.asyncDispose]: stop };
    }
    throw new Error(`docker-registry could not get a port: ${lastLog.slice(-1000)}`);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
