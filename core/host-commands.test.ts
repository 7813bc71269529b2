import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { text } from 'node:stream/consumers';
import { afterAll, describe, expect, it } from 'vitest';
import { hostCommands, HostCommands, readFromHost, runOnHost } from './host-commands.js';

const pools: HostCommands[] = [];
function pool(): HostCommands {
  const p = new HostCommands('/bin/sh');
  pools.push(p);
  return p;
}
afterAll(() => {
  for (const p of pools) p.close();
});

/** Our children that are helper shells (their argv[0] is `buildlite-host`'s script name). */
function helperPids(): number[] {
  const out: number[] = [];
  for (const tid of readdirSync('/proc/self/task')) {
    for (const pid of readFileText(`/proc/self/task/${tid}/children`).trim().split(' ').filter(Boolean)) {
      if (readFileText(`/proc/${pid}/cmdline`).includes('buildlite-host')) out.push(Number(pid));
    }
  }
  return out;
}
function readFileText(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

describe('HostCommands', () => {
  it('passes every argument verbatim: quotes, $, backticks and globs are not interpreted', async () => {
    const nasty = [`a'b`, '$HOME', '`id`', '"q"', '*', '; rm -rf /', '\\', ' lead', ''];
    const r = await pool().runReading('/usr/bin/printf', ['%s|', ...nasty], text);
    expect(r.code).toBe(0);
    expect(r.value).toBe(`${nasty.join('|')}|`);
  });

  it('reports the exit status and the stderr of a failing command', async () => {
    const r = await pool().run('/bin/sh', ['-c', 'echo "no such thing" >&2; exit 3']);
    expect(r).toEqual({ code: 3, stderr: 'no such thing', timedOut: false, aborted: false });
    const missing = await pool().run('/nonexistent/cmd', []);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toMatch(/not found/);
  });

  it('does not hand out the stdout of a command that failed', async () => {
    const r = await pool().runReading('/bin/sh', ['-c', 'echo partial; exit 1'], text);
    expect(r.code).toBe(1);
    expect(r.value).toBeUndefined();
  });

  it('kills a command at its timeout, with its helper, and serves the next command', async () => {
    const p = pool();
    const started = Date.now();
    const r = await p.run('/bin/sleep', ['30'], { timeoutMs: 200 });
    expect(r).toMatchObject({ code: 137, timedOut: true, aborted: false });
    expect(Date.now() - started).toBeLessThan(10_000);
    // pgrep's status 1: no process matched.
    expect(spawnSync('pgrep', ['-f', '-x', '/bin/sleep 30']).status).toBe(1);
    expect((await p.run('/bin/echo', ['next'])).code).toBe(0);
  }, 20_000);

  it('kills a command on abort', async () => {
    const p = pool();
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const r = await p.run('/bin/sleep', ['31'], { signal: ac.signal });
    expect(r).toMatchObject({ code: 137, aborted: true });
    const after = await p.run('/bin/true', []);
    expect(after.code).toBe(0);
  });

  it('runs concurrent commands on at most four helpers, queueing the rest', async () => {
    const p = pool();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bl-hc-'));
    try {
      // Each command marks itself running, counts the running ones, holds a moment, unmarks.
      const script = 'touch "$1/run.$2"; n=$(ls "$1" | wc -l); sleep 0.3; rm "$1/run.$2"; echo $n';
      const results = await Promise.all(Array.from({ length: 8 }, (_, i) => p.runReading('/bin/sh', ['-c', script, 'sh', dir, String(i)], text)));
      expect(results.map((r) => r.code)).toEqual(Array(8).fill(0));
      const most = Math.max(...results.map((r) => Number(r.value!.trim())));
      expect(most).toBeGreaterThanOrEqual(2);
      expect(most).toBeLessThanOrEqual(4);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 20_000);

  it('replaces a helper that was killed from outside', async () => {
    const p = pool();
    expect((await p.run('/bin/true', [])).code).toBe(0);
    const before = new Set(helperPids());
    for (const pid of before) process.kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
    expect((await p.run('/bin/echo', ['again'])).code).toBe(0);
    expect(helperPids().some((pid) => !before.has(pid))).toBe(true);
  });

  it('leaves no file behind: outputs go at once, each helper directory with its helper', async () => {
    const dirs = () => new Set(readdirSync(os.tmpdir()).filter((d) => d.startsWith('buildlite-host-')));
    const before = dirs();
    const p = new HostCommands('/bin/sh');
    await Promise.all([p.runReading('/bin/echo', ['x'], text), p.runReading('/bin/false', [], text), p.run('/bin/sh', ['-c', 'echo e >&2; exit 2'])]);
    const ours = [...dirs()].filter((d) => !before.has(d));
    expect(ours.length).toBeGreaterThan(0);
    for (const d of ours) expect(readdirSync(path.join(os.tmpdir(), d)).filter((f) => f.startsWith('out-'))).toEqual([]);
    p.close();
    for (let i = 0; i < 100 && ours.some((d) => existsSync(path.join(os.tmpdir(), d))); i++) await new Promise((r) => setTimeout(r, 20));
    expect(ours.filter((d) => existsSync(path.join(os.tmpdir(), d)))).toEqual([]);
  });
});

describe('runOnHost / readFromHost', () => {
  it('runs an urgent command at once when every helper is busy, and queues an ordinary one', async () => {
    const pool = hostCommands()!;
    const stop = new AbortController();
    const order: string[] = [];
    const busy = Array.from({ length: 8 }, () => pool.run('/bin/sleep', ['20'], { signal: stop.signal }).then(() => order.push('sleep')));
    await new Promise((r) => setTimeout(r, 200));
    expect(pool.saturated).toBe(true);
    const queued = runOnHost('/bin/echo', ['ordinary']).then((r) => order.push(`ordinary ${r.code}`));
    const urgent = await runOnHost('/bin/echo', ['urgent'], { urgent: true });
    order.push(`urgent ${urgent.code}`);
    expect(order).toEqual(['urgent 0']);
    stop.abort();
    await Promise.all([...busy, queued]);
    expect(order.slice(1)).toContain('ordinary 0');
  }, 30_000);


  it('spawn directly, with the same results, for an argument the line protocol cannot carry', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bl-hc-'));
    const odd = path.join(dir, 'new\nline');
    writeFileSync(odd, 'body');
    try {
      const r = await readFromHost('/bin/cat', [odd], text);
      expect(r).toMatchObject({ code: 0, value: 'body' });
      const failed = await runOnHost('/bin/cat', [`${odd}-missing`]);
      expect(failed.code).toBe(1);
      expect(failed.stderr).toMatch(/No such file/);
      expect(existsSync(odd)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
