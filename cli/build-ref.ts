/** A build on a build service, as progress output and metadata name it. */
export interface RemoteBuildRef {
  readonly buildId: string;
  readonly server: string;
}

/** The line that names a remote build (and, with `hint`, how to get back to it). */
export function attachedLine(b: RemoteBuildRef, hint = true): string {
  return `build ${b.buildId} on ${b.server}${hint ? ` (re-attach: buildlite watch ${b.buildId})` : ''}`;
}
