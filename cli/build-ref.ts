/** A build on a build service, as progress output and metadata name it. */
export interface RemoteBuildRef {
  readonly buildId: string;
  readonly server: string;
}

/** The line that names a remote build and how to get back to it. */
export function attachedLine(b: RemoteBuildRef): string {
  return `build ${b.buildId} on ${b.server} (re-attach: buildlite watch ${b.buildId})`;
}
