import { randomBytes } from 'node:crypto';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { atomicWriteFile, isErrno } from '../core/fs-util.js';

/**
 * When a state root's full sweep is due. The sweep reads every snapshot
 * record (a CI runner's root holds thousands: 65 ms for 5,000 from the page
 * cache, 0.6 s from disk), and there is something for it to find only after:
 * - a process died on the root: the user registry (root-users.ts) finds its
 *   registration and leaves a mark here before it forgets the registration;
 * - a reboot: snapshots that no sync covered may have lost files
 *   (snapshot/durability.ts), so a new boot id makes the sweep due;
 * - a root that has no record of a sweep (new, or made by an older version).
 * A process that ends normally removes its own steps' snapshots, mounts and
 * ingests. What one leaves after a failed clean-up waits for the next due
 * sweep, or for `du`/`prune`, which always sweep.
 *
 * Marks are files of their own, so a sweep removes exactly those it saw: a
 * death noticed while it ran stays due.
 */
export class SweepState {
  private readonly marksDir: string;
  private readonly sweptFile: string;

  constructor(root: string) {
    this.marksDir = path.join(root, 'sweep-due');
    this.sweptFile = path.join(root, 'swept.json');
  }

  /** Fsynced before the caller forgets the registration that told it, so a crash between them loses nothing. */
  async markDue(why: string): Promise<void> {
    await atomicWriteFile(path.join(this.marksDir, randomBytes(8).toString('hex')), `${why}\n`, 0o600);
  }

  /** The marks pending, and whether a sweep is due in `boot`. */
  async check(boot: string): Promise<{ readonly due: boolean; readonly marks: readonly string[] }> {
    let marks: string[] = [];
    try {
      marks = (await readdir(this.marksDir)).filter((n) => !n.includes('.tmp'));
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
    return { due: marks.length > 0 || (await this.sweptBoot()) !== boot, marks };
  }

  /** After a sweep that succeeded: it covered `boot` and the marks it saw. */
  async done(boot: string, marks: readonly string[]): Promise<void> {
    // Not fsynced: lost in a crash, it only makes the next sweep run again.
    await atomicWriteFile(this.sweptFile, JSON.stringify({ boot }), 0o600, { durable: false });
    for (const m of marks) await rm(path.join(this.marksDir, m), { force: true });
  }

  private async sweptBoot(): Promise<string | undefined> {
    try {
      const v = JSON.parse(await readFile(this.sweptFile, 'utf8')) as { boot?: unknown };
      return typeof v.boot === 'string' ? v.boot : undefined;
    } catch {
      // Absent or torn: no sweep on record.
      return undefined;
    }
  }
}
