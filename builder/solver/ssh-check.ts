import { CodedError, withLocation } from '../../core/errors.js';
import type { Graph } from '../graph/index.js';

/** A required agent that was not forwarded: the id, never a path. */
export function sshMissing(id: string): CodedError {
  const flag = id === 'default' ? '--ssh default (the agent of $SSH_AUTH_SOCK) or --ssh default=SOCKET|KEYFILE' : `--ssh ${id}=SOCKET|KEYFILE`;
  return new CodedError('NOT_FOUND', `no ssh agent ${JSON.stringify(id)} was forwarded to this build: pass it with ${flag}`);
}

/**
 * Before any step runs: every `RUN --mount=type=ssh,required` and every git
 * source over ssh (which uses the `default` agent, as BuildKit's) has its agent,
 * so a build does not fail halfway, after its first steps ran. The error
 * names the id and the Dockerfile line.
 */
export function checkSshAgents(graph: Graph, agents: ReadonlyMap<string, string>): void {
  for (const v of graph.topoOrder()) {
    let missing: string | undefined;
    if (v.def.kind === 'exec') {
      for (const m of v.def.mounts) {
        if (m.type === 'ssh' && m.required && !agents.has(m.id)) missing ??= m.id;
      }
    } else if (v.def.kind === 'git' && isSshRemote(v.def.remote) && !agents.has('default')) {
      missing = 'default';
    }
    if (missing === undefined) continue;
    const err = sshMissing(missing);
    const range = graph.meta.get(v.digest)?.range;
    throw range ? withLocation(err, range) : err;
  }
}

/** ssh://, or the scp-like user@host:path. */
export function isSshRemote(remote: string): boolean {
  return /^ssh:\/\//i.test(remote) || !/^[a-z0-9]+:\/\//i.test(remote);
}
