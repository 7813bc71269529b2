import { posix } from 'node:path';
import { cleanPath } from '../../core/ignore.js';
import { DockerfileError } from './errors.js';
import { parseBool, parseBytes, parseNonNegativeInt, parseOctal } from './values.js';

/**
 * `RUN --mount=...` values, BuildKit's syntax: comma-separated `key=value`
 * fields (CSV quoting), `type` defaulting to bind. Inputs (`from`) stay
 * names here; the RUN converter turns them into vertex inputs. A relative
 * target is relative to the step's working directory, and a bind, cache or
 * tmpfs mount without one is mounted at the working directory itself (as in
 * BuildKit: `RUN --mount=from=build make` sees the stage where it works).
 */
export type MountSpec =
  | { type: 'bind'; target: string; from?: string; source: string; readonly: boolean }
  | {
      type: 'cache';
      target: string;
      id: string;
      sharing: 'shared' | 'private' | 'locked';
      from?: string;
      source?: string;
      mode: number;
      uid: number;
      gid: number;
      readonly: boolean;
    }
  | { type: 'secret'; target?: string; env?: string; id: string; required: boolean; mode: number; uid: number; gid: number }
  | { type: 'tmpfs'; target: string; size?: number }
  /** `target` absent: the RUN converter numbers it (`/run/buildkit/ssh_agent.N`). */
  | { type: 'ssh'; target?: string; id: string; required: boolean; mode: number; uid: number; gid: number };

const MOUNT_TYPES = ['bind', 'cache', 'secret', 'tmpfs', 'ssh'];

/** Fields each mount type accepts (aliases folded first). */
const ALLOWED: Record<string, ReadonlySet<string>> = {
  bind: new Set(['type', 'target', 'source', 'from', 'readonly']),
  cache: new Set(['type', 'target', 'source', 'from', 'readonly', 'id', 'sharing', 'mode', 'uid', 'gid']),
  secret: new Set(['type', 'target', 'id', 'source', 'env', 'required', 'mode', 'uid', 'gid']),
  tmpfs: new Set(['type', 'target', 'size']),
  ssh: new Set(['type', 'target', 'id', 'required', 'mode', 'uid', 'gid']),
};

const ALIASES: Record<string, string> = {
  dst: 'target',
  destination: 'target',
  src: 'source',
  ro: 'readonly',
  'read-only': 'readonly',
};

/** Split a CSV record: commas separate fields, double quotes group. */
function csvFields(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (ch === '"') {
      if (quoted && text[i + 1] === '"') {
        cur += '"';
        i++;
      } else quoted = !quoted;
    } else if (ch === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (quoted) throw new DockerfileError(`--mount: unterminated quote in ${JSON.stringify(text)}`);
  out.push(cur);
  return out;
}

export function parseMount(text: string, cwd = '/'): MountSpec {
  const fields = new Map<string, string>();
  let rw: boolean | undefined;
  for (const field of csvFields(text)) {
    if (field === '') continue;
    const eq = field.indexOf('=');
    const rawKey = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    const value = eq < 0 ? undefined : field.slice(eq + 1);
    if (rawKey === 'rw' || rawKey === 'readwrite') {
      rw = value === undefined ? true : parseBool(value, `--mount ${rawKey}`);
      continue;
    }
    const key = ALIASES[rawKey] ?? rawKey;
    if (key === 'readonly' && value === undefined) {
      rw = false;
      continue;
    }
    if (value === undefined) {
      if (key === 'required') {
        fields.set(key, 'true');
        continue;
      }
      throw new DockerfileError(`--mount: invalid field ${JSON.stringify(field)}: must be a key=value pair`);
    }
    if (fields.has(key)) throw new DockerfileError(`--mount: duplicate field ${JSON.stringify(rawKey)}`);
    fields.set(key, value);
  }
  const type = (fields.get('type') ?? 'bind').toLowerCase();
  if (!MOUNT_TYPES.includes(type)) throw new DockerfileError(`--mount: unsupported mount type ${JSON.stringify(type)} (want one of ${MOUNT_TYPES.join(', ')})`);
  const allowed = ALLOWED[type] as ReadonlySet<string>;
  for (const k of fields.keys()) {
    if (!allowed.has(k)) throw new DockerfileError(`--mount: unexpected key ${JSON.stringify(k)} for type=${type}`);
  }
  if (fields.has('readonly')) rw = !parseBool(fields.get('readonly') as string, '--mount readonly');
  const target = fields.get('target');
  const abs = (t: string): string => posix.resolve('/', t);
  // Where a bind, cache or tmpfs mount goes: the target, relative to the working directory.
  const mountPoint = (): string => {
    const at = posix.resolve('/', cwd, target ?? '');
    if (at === '/') throw new DockerfileError(`--mount: invalid target ${JSON.stringify(at)} for type=${type}: a mount cannot cover the root`);
    return at;
  };
  const num = (k: string, dflt: number): number => {
    const v = fields.get(k);
    return v === undefined ? dflt : parseNonNegativeInt(v, `--mount ${k}`);
  };
  const from = fields.get('from');
  const source = fields.get('source');
  switch (type) {
    case 'bind':
      return { type, target: mountPoint(), ...(from !== undefined ? { from } : {}), source: source ?? '/', readonly: rw === undefined ? true : !rw };
    case 'cache': {
      const sharing = (fields.get('sharing') ?? 'shared').toLowerCase();
      if (sharing !== 'shared' && sharing !== 'private' && sharing !== 'locked') {
        throw new DockerfileError(`--mount: invalid sharing ${JSON.stringify(sharing)} (want shared, private or locked)`);
      }
      const mode = fields.get('mode');
      return {
        type,
        target: mountPoint(),
        // BuildKit's default id is the target as written (cleaned), not where it lands.
        id: fields.get('id') || cleanPath(target ?? ''),
        sharing,
        ...(from !== undefined ? { from } : {}),
        ...(source !== undefined ? { source } : {}),
        mode: mode === undefined ? 0o755 : parseOctal(mode, '--mount mode'),
        uid: num('uid', 0),
        gid: num('gid', 0),
        readonly: rw === undefined ? false : !rw,
      };
    }
    case 'secret': {
      const env = fields.get('env');
      // BuildKit takes `source` as another spelling of a secret's id.
      if (source !== undefined && fields.has('id')) throw new DockerfileError('--mount: type=secret takes an id or a source, not both');
      const id = source || fields.get('id') || (target ? posix.basename(target) : env);
      if (!id) throw new DockerfileError('--mount: type=secret needs an id or a target');
      const mode = fields.get('mode');
      const required = fields.has('required') ? parseBool(fields.get('required') as string, '--mount required') : false;
      // A secret with only env= is not mounted as a file.
      const file = target ? abs(target) : env ? undefined : `/run/secrets/${id}`;
      return {
        type,
        ...(file ? { target: file } : {}),
        ...(env ? { env } : {}),
        id,
        required,
        mode: mode === undefined ? 0o400 : parseOctal(mode, '--mount mode'),
        uid: num('uid', 0),
        gid: num('gid', 0),
      };
    }
    case 'ssh': {
      const mode = fields.get('mode');
      return {
        type,
        ...(target ? { target: abs(target) } : {}),
        id: fields.get('id') || 'default',
        required: fields.has('required') ? parseBool(fields.get('required') as string, '--mount required') : false,
        // BuildKit's defaults: a socket only its owner (root unless uid= says otherwise) may use.
        mode: mode === undefined ? 0o600 : parseOctal(mode, '--mount mode'),
        uid: num('uid', 0),
        gid: num('gid', 0),
      };
    }
    default: {
      const size = fields.get('size');
      return { type: 'tmpfs', target: mountPoint(), ...(size !== undefined ? { size: parseBytes(size, '--mount size') } : {}) };
    }
  }
}
