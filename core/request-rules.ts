import { ENTITLEMENTS, type Entitlement, type NetworkMode } from './build.js';
import { CodedError } from './errors.js';

export const NETWORK_MODES: readonly NetworkMode[] = ['default', 'none', 'host'];

export function isNetworkMode(s: string): s is NetworkMode {
  return (NETWORK_MODES as readonly string[]).includes(s);
}

export function isEntitlement(s: string): s is Entitlement {
  return (ENTITLEMENTS as readonly string[]).includes(s);
}

/**
 * A build request's network mode and entitlements, checked by the one rule
 * (and with the one message per fault) at every door a request comes
 * through: the CLI's flags (cli/commands/build.ts), the API's Submit
 * (api/validate.ts) and the builder itself (builder/builder.ts), for a
 * program that embeds it and passes neither. A value outside the lists is
 * INVALID_ARGUMENT; network=host without asking for network.host is
 * PERMISSION_DENIED: the build's half of docs/security.md T2 (the operator's
 * half is checked where the build runs, and each RUN is checked again).
 * Returns the network mode, `default` when the request names none.
 */
export function checkNetworkRequest(req: { readonly network?: string; readonly allow?: readonly string[] }): NetworkMode {
  const network = req.network ?? 'default';
  if (!isNetworkMode(network)) throw new CodedError('INVALID_ARGUMENT', `network "${network}": want ${NETWORK_MODES.join(', ').replace(/, (?=[^,]*$)/, ' or ')}`);
  for (const a of req.allow ?? []) {
    if (!isEntitlement(a)) throw new CodedError('INVALID_ARGUMENT', `allow "${a}": the entitlements are ${ENTITLEMENTS.join(' and ')}`);
  }
  if (network === 'host' && !(req.allow ?? []).includes('network.host')) {
    throw new CodedError('PERMISSION_DENIED', 'network=host needs the network.host entitlement: ask for it with allow (buildlite build --allow network.host)');
  }
  return network;
}
