import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * A cgroup v1 freezer for tests: a frozen task that is sent SIGKILL stays in
 * /proc, in state D with SIGKILL pending, until it is thawed. That is what a
 * process killed while stuck in the kernel looks like, on demand.
 */
const FREEZER = '/sys/fs/cgroup/freezer';

export class Freezer implements AsyncDisposable {
  private constructor(readonly dir: string) {}

  static async create(): Promise<Freezer> {
    if (!existsSync(path.join(FREEZER, 'cgroup.procs'))) throw new Error(`tests that freeze processes need the cgroup v1 freezer at ${FREEZER}`);
    const dir = path.join(FREEZER, `bl-test-${randomBytes(4).toString('hex')}`);
    await mkdir(dir);
    return new Freezer(dir);
  }

  async add(pid: number): Promise<void> {
    await writeFile(path.join(this.dir, 'cgroup.procs'), String(pid));
  }

  async freeze(): Promise<void> {
    await writeFile(path.join(this.dir, 'freezer.state'), 'FROZEN');
    // FREEZING until every task has stopped.
    for (let i = 0; i < 500 && (await this.state()) !== 'FROZEN'; i++) await new Promise((r) => setTimeout(r, 10));
    if ((await this.state()) !== 'FROZEN') throw new Error(`freezer ${this.dir} did not freeze`);
  }

  async thaw(): Promise<void> {
    if (existsSync(this.dir)) await writeFile(path.join(this.dir, 'freezer.state'), 'THAWED');
  }

  private async state(): Promise<string> {
    return (await readFile(path.join(this.dir, 'freezer.state'), 'utf8')).trim();
  }

  /** Thaws, moves what is still alive back to the root freezer cgroup, removes the cgroup. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!existsSync(this.dir)) return;
    await this.thaw();
    const left = (await readFile(path.join(this.dir, 'cgroup.procs'), 'utf8')).split('\n').filter(Boolean);
    for (const pid of left) await writeFile(path.join(FREEZER, 'cgroup.procs'), pid).catch(() => undefined);
    for (let i = 0; i < 100; i++) {
      try {
        await rmdir(this.dir);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }
}
