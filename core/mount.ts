/**
 * A mount as plain data, as in containerd's mount.Mount: the snapshotter emits
 * these, the executor writes them into the runtime spec. Nothing here mounts.
 */
export interface Mount {
  /** Filesystem type: `overlay`, `bind`, `tmpfs`, ... */
  readonly type: string;
  /** What to mount: a host path for bind, `overlay` for overlay. */
  readonly source: string;
  /** Where, inside the container, for mounts beyond the rootfs. */
  readonly target?: string;
  /** mount(8) style options, e.g. `lowerdir=...`, `rbind`, `ro`. */
  readonly options: readonly string[];
}
