/**
 * A real, disposable `redis-server` for tests.
 *
 *   await using redis = await startRedis();
 *   const queue = new Queue(uniqueName('q'), { connection: { url: redis.url } });
 *   await redis.restart();   // same port: clients must reconnect
 *
 * Each server runs on a free loopback port with no persistence
 * (`--save '' --appendonly no`) in its own temp dir, and is killed on stop(),
 * on dispose, and at the latest when the test process exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './ports.js';

export interface TestRedis extends AsyncDisposable {
  /** `redis://127.0.0.1:PORT` */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** Pid of the running server, undefined while stopped. */
  readonly pid: number | undefined;
  /** Stops the server (SIGTERM, then SIGKILL) and removes its temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Stops and starts again on the same port, as a Redis restart looks to clients. */
  restart(): Promise<void>;
}

const BIN = process.env.BUILDLITE_REDIS_SERVER ?? 'redis-server';
const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

/** Servers still running, killed when the process exits so none outlive a crashed test. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function trackForExit(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

/** A key prefix no other test (or test run) shares, e.g. for BullMQ's `prefix`. */
export function uniquePrefix(label = 'test'): string {
  return `bl-${label}-${process.pid}-${randomBytes(4).toString('hex')}:`;
}

/** A name no other test shares (queue names, stream keys). */
export function uniqueName(label = 'test'): string {
  return `${label}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

export async function startRedis(): Promise<TestRedis> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'buildlite-redis-'));
  let port = 0;
  let child: ChildProcess | undefined;
  try {
    // The free port may be taken before redis binds it: try a few.
    for (let attempt = 0; ; attempt++) {
      port = await freePort();
      try {
        child = await launch(port, dir);
        break;
      } catch (err) {
        if (attempt >= 4 || !String(err).includes('Address already in use')) throw err;
      }
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  let stopped = false;
  const redis: TestRedis = {
    url: `redis://${HOST}:${port}`,
    host: HOST,
    port,
    get pid() {
      return child?.pid;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const c = child;
      child = undefined;
      try {
        if (c) await kill(c);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    async restart() {
      if (stopped) throw new Error('restart() after stop()');
      const c = child;
      child = undefined;
      if (c) await kill(c);
      // Same port on purpose; redis sets SO_REUSEADDR, so no TIME_WAIT wait.
      child = await launch(port, dir);
    },
    async [Symbol.asyncDispose]() {
      await redis.stop();
    },
  };
  return redis;
}

async function launch(port: number, dir: string): Promise<ChildProcess> {
  const args = [
    '--port', String(port),
    '--bind', HOST,
    '--save', '',
    '--appendonly', 'no',
    '--dir', dir,
    '--daemonize', 'no',
    // BullMQ requires it; matches compose.yaml.
    '--maxmemory-policy', 'noeviction',
    '--loglevel', 'warning',
  ];
  const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  trackForExit(child);
  let output = '';
  const collect = (b: Buffer) => {
    // Keep only the tail: enough to explain a failed start.
    output = (output + b.toString()).slice(-4000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);

  const exited = new Promise<never>((_, reject) => {
    child.once('error', (err) => reject(new Error(`cannot run ${BIN}: ${err.message} (install redis-server)`)));
    child.once('exit', (code, signal) =>
      reject(new Error(`${BIN} exited at start (code ${code}, signal ${signal}): ${output.trim()}`)),
    );
  });
  exited.catch(() => {});
  try {
    await Promise.race([waitForPong(port, START_TIMEOUT_MS), exited]);
  } catch (err) {
    await kill(child);
    throw err;
  }
  return child;
}

/** Polls with a raw RESP PING until the server answers +PONG. */
async function waitForPong(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if ((await ping(port)) === '+PONG') return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`redis on port ${port} did not answer PING within ${timeoutMs} ms: ${String(last)}`);
}

/** One PING on a fresh connection; resolves with the reply line. */
export function ping(port: number, host = HOST): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host });
    let buf = '';
    const timer = setTimeout(() => sock.destroy(new Error('PING timed out')), 1000);
    sock.on('connect', () => sock.write('*1\r\n$4\r\nPING\r\n'));
    sock.on('data', (b) => {
      buf += b.toString();
      const nl = buf.indexOf('\r\n');
      if (nl >= 0) {
        clearTimeout(timer);
        sock.end();
        resolve(buf.slice(0, nl));
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  try {
    await gone;
  } finally {
    clearTimeout(timer);
  }
}
