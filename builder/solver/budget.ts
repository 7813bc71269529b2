import { formatBytes } from '../../core/bytes.js';
import { limitExceeded } from '../../core/limit-error.js';

/**
 * What one build adds to the state directory, counted as it is written:
 * blobs it pulls or makes, snapshots it unpacks or commits, ADD downloads.
 * Past `max` the write in progress fails with the build disk limit, and the
 * build unwinds what that write had started (an ingest aborts, a snapshot is
 * removed, a download is deleted). It counts writes rather than measuring the
 * disk: what a failed step wrote and removed still counts, so the number only
 * grows and never races with cleanup; what is already stored (a shared base,
 * a cached step) is never written again, so it costs nothing.
 */
export class DiskBudget {
  private written = 0;

  constructor(readonly max: number) {}

  get writtenBytes(): number {
    return this.written;
  }

  /** Count `bytes` that `doing` writes; throws once the build is past its limit (and on every write after). */
  charge(bytes: number, doing: string): void {
    this.written += bytes;
    if (this.written > this.max) {
      throw limitExceeded('maxBuildDiskBytes', this.max, doing, `: this build has written ${formatBytes(this.written)} to the state directory`);
    }
  }
}
