import { BuildliteClient } from '../api/index.js';
import { serverOf, type RemoteFlagValues } from './remote-flags.js';
import { UsageError } from './usage.js';

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
