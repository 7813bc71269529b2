import { CodedError } from '../../core/errors.js';
import type { ExecDef, Graph } from '../graph/index.js';

/**
 * docs/security.md T2: a dangerous option needs the operator's grant AND the
 * build's request. This is the one rule every way of starting a process
 * consults: the builder checks the whole graph before anything runs (ONBUILD
 * triggers from a base image are exec vertices like any other), and each RUN
 * checks again at the moment of use. The executor refuses host networking and
 * insecure steps on its own too, as a last line.
 */
export interface Grants {
  /** The operator allows host networking on this builder. */
  readonly operatorAllowsHostNetwork: boolean;
  /** The operator allows RUN --security=insecure on this builder. */
  readonly operatorAllowsInsecure?: boolean;
  /** Entitlements the build asked for, e.g. `network.host`. */
  readonly allow: readonly string[];
}

export function grantRefusal(def: ExecDef, grants: Grants): string | undefined {
  // The build's own half first in each: it is the one the person reading this can fix.
  if (def.network === 'host') {
    if (!grants.allow.includes('network.host')) return 'RUN --network=host needs the network.host entitlement: pass --allow network.host';
    if (!grants.operatorAllowsHostNetwork) {
      return 'RUN --network=host: host networking is not allowed on this builder (the operator has not enabled it)';
    }
  }
  if (def.security === 'insecure') {
    if (!grants.allow.includes('security.insecure')) return 'RUN --security=insecure needs the security.insecure entitlement: pass --allow security.insecure';
    if (!grants.operatorAllowsInsecure) {
      return 'RUN --security=insecure: insecure steps are not allowed on this builder (the operator has not enabled them)';
    }
  }
  return undefined;
}

/** Refuse a graph before any container starts, naming the offending line. */
export function checkGraphGrants(graph: Graph, grants: Grants): void {
  for (const v of graph.topoOrder()) {
    if (v.def.kind !== 'exec') continue;
    const refusal = grantRefusal(v.def, grants);
    if (refusal === undefined) continue;
    const range = graph.meta.get(v.digest)?.range;
    throw new CodedError('PERMISSION_DENIED', refusal, range ? { range } : undefined);
  }
}
