import { BlockList, isIP } from 'node:net';
import { CodedError } from '../core/errors.js';

/**
 * Which addresses `ADD <url>` may connect to (docs/security.md T7). Everything that
 * is not public unicast space is denied unless allowed: a Dockerfile from a
 * stranger's repository must not read a developer's local services, a
 * worker's Redis or API, or the cloud metadata service.
 *
 * Addresses are checked after resolution, in the form the socket will use.
 * IPv4-mapped IPv6 (`::ffff:127.0.0.1`) is matched against the IPv4 rules
 * (BlockList does that, and the tests hold it to it); IPv4-compatible,
 * NAT64, 6to4 and Teredo forms embed an IPv4 address that cannot be vetted
 * here, so they are denied outright. Numeric host spellings (`2130706433`,
 * `0x7f.1`, `0177.0.0.1`, `127.1`) never reach this module: the WHATWG URL
 * parser has already turned them into dotted quads.
 */
export interface AddressPolicyOptions {
  /** Allow every address (the developer's or operator's explicit opt-in). */
  readonly allowPrivate?: boolean;
  /** CIDRs (`10.1.0.0/16`, `fd00::/8`) or single addresses allowed although they are in a denied range. */
  readonly allowNetworks?: readonly string[];
}

type Kind = 'loopback' | 'private' | 'link-local' | 'unspecified' | 'shared (carrier-grade NAT)' | 'multicast' | 'reserved' | 'IPv4-embedding';

/** The denied ranges, with what each is (for the message). */
const DENIED: ReadonlyArray<readonly [string, number, 'ipv4' | 'ipv6', Kind]> = [
  ['0.0.0.0', 8, 'ipv4', 'unspecified'], // "this network": connecting to 0.0.0.0 reaches the local host
  ['10.0.0.0', 8, 'ipv4', 'private'],
  // Carrier-grade NAT space is internal in practice: tailnets, cloud VPC internals,
  // and Alibaba Cloud's metadata service (100.100.100.200) live here.
  ['100.64.0.0', 10, 'ipv4', 'shared (carrier-grade NAT)'],
  ['127.0.0.0', 8, 'ipv4', 'loopback'],
  ['169.254.0.0', 16, 'ipv4', 'link-local'], // 169.254.169.254 is the cloud metadata service
  ['172.16.0.0', 12, 'ipv4', 'private'],
  ['192.0.0.0', 24, 'ipv4', 'reserved'], // IETF protocol assignments (192.0.0.192 is Oracle Cloud's metadata)
  ['192.168.0.0', 16, 'ipv4', 'private'],
  ['198.18.0.0', 15, 'ipv4', 'reserved'], // benchmarking, used inside some networks
  ['224.0.0.0', 4, 'ipv4', 'multicast'],
  ['240.0.0.0', 4, 'ipv4', 'reserved'], // reserved and broadcast
  ['::', 128, 'ipv6', 'unspecified'],
  ['::1', 128, 'ipv6', 'loopback'],
  ['::', 96, 'ipv6', 'IPv4-embedding'], // IPv4-compatible (::127.0.0.1), deprecated
  ['::ffff:0:0:0', 96, 'ipv6', 'IPv4-embedding'], // IPv4-translated (SIIT)
  ['64:ff9b::', 96, 'ipv6', 'IPv4-embedding'], // NAT64
  ['64:ff9b:1::', 48, 'ipv6', 'IPv4-embedding'], // local-use NAT64
  ['2001::', 32, 'ipv6', 'IPv4-embedding'], // Teredo
  ['2002::', 16, 'ipv6', 'IPv4-embedding'], // 6to4
  ['fc00::', 7, 'ipv6', 'private'], // unique local (fd00:ec2::254 is AWS's metadata address)
  ['fe80::', 10, 'ipv6', 'link-local'],
  ['fec0::', 10, 'ipv6', 'private'], // site-local, deprecated but still routed by some
  ['ff00::', 8, 'ipv6', 'multicast'],
];

export class AddressPolicy {
  private readonly allowPrivate: boolean;
  private readonly allowed = new BlockList();
  /** One list per kind, so a denial can say what the address is. */
  private readonly denied: ReadonlyArray<readonly [Kind, BlockList]>;

  constructor(opts: AddressPolicyOptions = {}) {
    this.allowPrivate = opts.allowPrivate ?? false;
    for (const net of opts.allowNetworks ?? []) addNetwork(this.allowed, net);
    const byKind = new Map<Kind, BlockList>();
    for (const [addr, prefix, type, kind] of DENIED) {
      let list = byKind.get(kind);
      if (!list) byKind.set(kind, (list = new BlockList()));
      list.addSubnet(addr, prefix, type);
    }
    this.denied = [...byKind];
  }

  /** Undefined when `address` may be reached; else what it is (`loopback`, `private`, …). */
  denial(address: string): Kind | undefined {
    const family = isIP(address);
    if (family === 0) return 'reserved'; // not an address at all: never connect to it
    if (this.allowPrivate) return undefined;
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (this.allowed.check(address, type)) return undefined;
    for (const [kind, list] of this.denied) if (list.check(address, type)) return kind;
    return undefined;
  }
}

function addNetwork(list: BlockList, spec: string): void {
  const [addr = '', prefix] = spec.split('/');
  const family = isIP(addr);
  if (family === 0) throw new CodedError('INVALID_OPTION', `httpPolicy.allowNetworks: ${JSON.stringify(spec)} is not an address or CIDR`);
  const type = family === 6 ? 'ipv6' : 'ipv4';
  if (prefix === undefined) {
    list.addAddress(addr, type);
    return;
  }
  const bits = Number(prefix);
  if (!/^\d+$/.test(prefix) || bits > (family === 6 ? 128 : 32)) {
    throw new CodedError('INVALID_OPTION', `httpPolicy.allowNetworks: bad prefix length in ${JSON.stringify(spec)}`);
  }
  list.addSubnet(addr, bits, type);
}
