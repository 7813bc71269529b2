export type { CommitOptions, SnapshotInfo, Snapshotter } from './snapshotter.js';
export { OverlaySnapshotter, MOUNT_OPTIONS_MAX, type SweepResult } from './overlay.js';
export {
  SnapshotChainTooLongError,
  SnapshotExistsError,
  SnapshotNotFoundError,
  SnapshotStateError,
} from './errors.js';
export { diskUsage } from './usage.js';
