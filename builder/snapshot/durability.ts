import { readFileSync } from 'node:fs';
import { atomicWriteFile } from '../../core/fs-util.js';
import { runOnHost } from '../../core/host-commands.js';

/**
 * When a snapshot's files are on disk, and what a new boot does with those
 * that may not be.
 *
 * A step's files (and an unpacked layer's) are written through the page
 * cache. Nothing used to sync them on purpose: the unmount of an overlay
 * happened to (overlayfs syncs its upper filesystem when unmounted), but a
 * first layer unpacked into a plain directory was never synced at all, and
 * after a power loss its record could name a snapshot of empty files, the
 * failure containerd had (containerd/containerd#5854) until it gained an
 * opt-in syncfs after unpacking.
 *
 * So durability is now explicit, and off the step's path:
 * - a commit records the boot it happened in and the monotonic clock
 *   (`unsynced`), instead of waiting for a sync;
 * - the snapshotter then syncs the snapshots' filesystem in the background
 *   (one syncfs, coalesced while one runs) and records, per boot, the clock
 *   value every commit up to which is now on disk (`synced.json`);
 * - `flush()` waits for that (the builder's close does), so a process that
 *   ends normally leaves every snapshot it made covered;
 * - after a reboot, the first process on the root (the sweep that runs as its
 *   only user) drops every snapshot of an earlier boot that no sync covered,
 *   and every snapshot above a dropped one. Their blobs are in the content
 *   store (fsynced), so a later build unpacks them again.
 *
 * Overlay mounts of steps then use `volatile` (no sync at unmount): the sync
 * leaves the step's path, though on the bench's VM the difference is inside
 * the noise (bench/results/2026-12-07-issue18-pass7.md).
 */

/** A commit whose files were not known to be on disk when its record was written. */
export interface Unsynced {
  /** /proc/sys/kernel/random/boot_id of the boot the commit happened in. */
  readonly boot: string;
  /** CLOCK_MONOTONIC (ns, as text) when the record was written: after every file of the snapshot. */
  readonly mono: string;
}

/** Per boot, every commit with a `mono` at or below this is on disk. */
export type SyncedThrough = Readonly<Record<string, string>>;

let bootIdCache: string | undefined;

/** This boot's id. Read once: it names the boot, not the process. */
export function currentBootId(): string {
  bootIdCache ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  return bootIdCache;
}

/** The record of a commit made now, in `boot`. */
export function unsyncedNow(boot: string): Unsynced {
  return { boot, mono: process.hrtime.bigint().toString() };
}

/**
 * Whether a snapshot may have lost files: committed unsynced in an earlier
 * boot than `boot`, and no sync of that boot covered it. Records without the
 * field predate this rule: they are kept, as they always were.
 */
export function mayBeLost(unsynced: Unsynced | undefined, boot: string, synced: SyncedThrough): boolean {
  if (unsynced === undefined || unsynced.boot === boot) return false;
  const through = synced[unsynced.boot];
  return through === undefined || BigInt(unsynced.mono) > BigInt(through);
}

/**
 * `synced.json`: replaced whole (core/fs-util.ts atomicWriteFile), so a crash
 * leaves the old or the new one. Writers race only to lose
 * coverage (a lower value over a higher one), which costs a re-unpack after a
 * crash and never keeps a lost snapshot.
 */
export class SyncedMarks {
  constructor(private readonly file: string) {}

  read(): SyncedThrough {
    try {
      const v = JSON.parse(readFileSync(this.file, 'utf8')) as unknown;
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return {};
      return Object.fromEntries(Object.entries(v).filter(([k, m]) => /^[0-9a-f-]{36}$/.test(k) && typeof m === 'string' && /^[0-9]+$/.test(m)));
    } catch {
      // Missing or torn: nothing is known to be synced, the safe reading.
      return {};
    }
  }

  /** Record that every commit of `boot` up to `mono` is on disk (one entry per boot, ~60 bytes). */
  async advance(boot: string, mono: bigint): Promise<void> {
    const next: Record<string, string> = { ...this.read() };
    if (next[boot] === undefined || BigInt(next[boot]) < mono) next[boot] = mono.toString();
    // Never recreates a root that was removed meanwhile: the mark has nothing left to cover.
    await atomicWriteFile(this.file, JSON.stringify(next), 0o600, { createDir: false });
  }
}

/** syncfs(2) of the filesystem holding `dir` (coreutils' `sync -f`; Node has no syncfs). */
export async function syncFilesystem(dir: string): Promise<void> {
  const r = await runOnHost('sync', ['-f', dir]);
  if (r.code !== 0) throw new Error(`sync -f ${dir} failed (exit ${r.code}): ${r.stderr.slice(0, 300)}`);
}

/**
 * Background syncs of one filesystem: `schedule()` after each commit starts
 * one (or asks the running one to go again, since it may have started before
 * the commit), `settle()` waits until the last one asked for has recorded its
 * mark. A failed sync records nothing: its commits stay unsynced.
 */
export class BackgroundSync {
  private running: Promise<void> | undefined;
  private again = false;

  constructor(
    private readonly dir: string,
    private readonly marks: SyncedMarks,
    private readonly boot: string,
  ) {}

  schedule(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.loop().finally(() => {
      this.running = undefined;
    });
  }

  async settle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      // Taken before the sync starts: every record written before this instant is covered by it.
      const mono = process.hrtime.bigint();
      try {
        await syncFilesystem(this.dir);
        await this.marks.advance(this.boot, mono);
      } catch {
        // Left unsynced: after a reboot those snapshots are unpacked again, nothing worse.
      }
    } while (this.again);
  }
}
