/**
 * The flags of commands that can talk to a build service, apart from the
 * client itself (remote.ts): an embedded build or a local `du` reads these
 * without loading gRPC, BullMQ and ioredis, which cost a local command
 * ~0.3 s of CPU to load from node_modules (issue 18).
 */

/** The flags of every command that can talk to a build service. */
export const REMOTE_FLAGS = {
  server: { type: 'string' },
  token: { type: 'string' },
} as const;

export interface RemoteFlagValues {
  readonly server?: string | undefined;
  readonly token?: string | undefined;
}

/**
 * The build service a command talks to: `--server`, else BUILDLITE_SERVER.
 * An empty value is no server (`--server ''` or `BUILDLITE_SERVER=` runs an
 * embedded build where a default is set).
 */
export function serverOf(v: RemoteFlagValues): string | undefined {
  const s = v.server ?? process.env['BUILDLITE_SERVER'];
  return s ? s : undefined;
}
