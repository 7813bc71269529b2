export { OverlaySnapshotter, MOUNT_OPTIONS_MAX } from './overlay.js';
export { SnapshotChainTooLongError, SnapshotExistsError, SnapshotNotFoundError, SnapshotStateError, } from './errors.js';
export { diskUsage } from './usage.js';
//# sourceMappingURL=index.js.map