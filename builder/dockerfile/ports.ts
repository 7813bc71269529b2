import { isIP } from 'node:net';
import { DockerfileError } from './errors.js';

/**
 * EXPOSE's port specs, as BuildKit reads them: `80`, `80/udp`, `8000-8010/tcp`,
 * and the forms that name a host side, `8080:80` and `127.0.0.1:8080:80/tcp`,
 * which BuildKit accepts with an ExposeInvalidFormat warning and exposes as
 * their container port (an image cannot publish a host port).
 */
export interface PortSpec {
  /** `80/tcp`, one per port of a range; the protocol in lower case. */
  readonly ports: string[];
  /** An IP address or a host port was given. */
  readonly hostSide: boolean;
  /** The protocol was not written in lower case (`53/UDP`). */
  readonly protoNotLower: boolean;
}

const PROTOCOLS = new Set(['tcp', 'udp', 'sctp']);
/** Expanded port ranges are capped so `EXPOSE 1-65535` cannot blow up a config. */
const MAX_RANGE = 65536;

export function parsePortSpec(spec: string): PortSpec {
  const bad = (why: string): DockerfileError => new DockerfileError(`invalid port ${JSON.stringify(spec)}: ${why}`);
  const parts = spec.split(':');
  const container = parts.pop() as string;
  const host = parts.pop();
  // What is left is an address; an IPv6 one has colons of its own.
  const ip = parts.join(':');
  const slash = container.indexOf('/');
  const port = slash < 0 ? container : container.slice(0, slash);
  const written = slash < 0 ? '' : container.slice(slash + 1);
  const proto = written === '' ? 'tcp' : written.toLowerCase();
  if (port === '') throw bad('no port given');
  if (!PROTOCOLS.has(proto)) throw new DockerfileError(`invalid protocol ${JSON.stringify(written)} in port ${JSON.stringify(spec)}`);
  if (ip !== '' && isIP(ip.replace(/^\[(.*)\]$/, '$1')) === 0) throw bad(`${JSON.stringify(ip)} is not an IP address`);
  const [start, end] = portRange(port, spec);
  if (host !== undefined && host !== '') {
    const [hs, he] = portRange(host, spec);
    // A host range may only differ in size when the container side is a single port.
    if (he - hs !== end - start && end !== start) throw bad('the host and container ranges differ in size');
  }
  const ports: string[] = [];
  for (let p = start; p <= end; p++) ports.push(`${p}/${proto}`);
  return { ports, hostSide: ip !== '' || (host !== undefined && host !== ''), protoNotLower: written !== written.toLowerCase() };
}

/** `80` or `8000-8010`, each 0-65535, not backwards. */
function portRange(text: string, spec: string): [number, number] {
  const m = /^([0-9]+)(?:-([0-9]+))?$/.exec(text);
  if (!m) throw new DockerfileError(`invalid port ${JSON.stringify(spec)}: want [IP:][HOST_PORT:]PORT[-PORT][/PROTOCOL]`);
  const start = Number(m[1]);
  const end = m[2] === undefined ? start : Number(m[2]);
  if (start > 65535 || end > 65535) throw new DockerfileError(`invalid port ${JSON.stringify(spec)}: ports are 0-65535`);
  if (end < start) throw new DockerfileError(`invalid port range ${JSON.stringify(spec)}: end is before start`);
  if (end - start >= MAX_RANGE) throw new DockerfileError(`invalid port range ${JSON.stringify(spec)}`);
  return [start, end];
}
