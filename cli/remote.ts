import { BuildliteClient } from '../api/index.js';
import { UsageError } from './usage.js';

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

export interface Remote {
  readonly server: string;
  readonly client: BuildliteClient;
}

/** A client for a command that needs a server; a missing server or token is a usage error. */
export function connect(command: string, v: RemoteFlagValues): Remote {
  const server = serverOf(v);
  if (!server) throw new UsageError(`${command} talks to a build service: --server HOST:PORT (or BUILDLITE_SERVER)`, command);
  const token = v.token ?? process.env['BUILDLITE_TOKEN'];
  if (!token) throw new UsageError('a token is required: --token T (or BUILDLITE_TOKEN)', command);
  return { server, client: new BuildliteClient(server, token) };
}
