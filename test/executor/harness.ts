import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { mountsUnder } from '../../core/mounter.js';
import type { ExecOptions, ExecResult, ProcessSpec } from '../../builder/executor/index.js';
import { RuncExecutor, type RuncExecutorOptions } from '../../builder/executor/index.js';
import { makeBusyboxRootfs } from '../helpers/busybox-rootfs.js';

const execFileP = promisify(execFile);

export interface RunOutput {
  readonly result: ExecResult;
  readonly stdout: string;
  readonly stderr: string;
}

/** A temp dir with a busybox rootfs and an executor whose state lives beside it. */
export class Sandbox implements AsyncDisposable {
  private constructor(
    readonly dir: string,
    readonly rootfs: string,
    readonly stateDir: string,
    readonly executor: RuncExecutor,
  ) {}

  static async create(options: Partial<RuncExecutorOptions> = {}): Promise<Sandbox> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bl-sandbox-'));
    const rootfs = path.join(dir, 'rootfs');
    await makeBusyboxRootfs(rootfs);
    const stateDir = path.join(dir, 'state');
    return new Sandbox(dir, rootfs, stateDir, new RuncExecutor({ stateDir, ...options }));
  }

  /** Run `sh -c script` (or argv) as `user` with the rootfs bind-mounted read-write. */
  async run(
    script: string | string[],
    proc: Partial<ProcessSpec> = {},
    opts: Partial<ExecOptions> = {},
  ): Promise<RunOutput> {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const result = await this.executor.run(
      {
        args: Array.isArray(script) ? script : ['/bin/sh', '-c', script],
        env: ['PATH=/bin:/usr/bin'],
        cwd: '/',
        user: '',
        ...proc,
      },
      {
        rootfs: [{ type: 'bind', source: this.rootfs, options: ['rbind', 'rw'] }],
        network: 'none',
        onStdout: (c) => out.push(c),
        onStderr: (c) => err.push(c),
        ...opts,
      },
    );
    return { result, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
  }

  /** Containers still in our runc root (should be none between runs). */
  async containers(): Promise<string[]> {
    await this.executor.drain();
    const { stdout } = await execFileP('runc', ['--root', path.join(this.stateDir, 'runc'), 'list', '--format', 'json']);
    const parsed = JSON.parse(stdout.trim() || 'null') as Array<{ id: string }> | null;
    return (parsed ?? []).map((c) => c.id);
  }

  /** Mount points under the state dir (should be none between runs). */
  mounts(): Promise<string[]> {
    return mountsUnder(this.stateDir);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.executor.sweep();
      await this.executor.close();
    } finally {
      if ((await mountsUnder(this.dir)).length === 0) await rm(this.dir, { recursive: true, force: true });
    }
  }
}

/** Compile a static C program for the sandbox, or undefined when this host has no static libc. */
export async function compileStatic(source: string, outFile: string): Promise<boolean> {
  const { writeFile } = await import('node:fs/promises');
  const src = `${outFile}.c`;
  await writeFile(src, source);
  try {
    await execFileP('gcc', ['-static', '-O1', '-o', outFile, src], { timeout: 60_000 });
    return true;
  } catch {
    return false;
  }
}
