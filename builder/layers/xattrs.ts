import type { Readable } from 'node:stream';
import { readFromHost } from '../../core/host-commands.js';
import { BuildliteError, type ErrorCode } from '../../core/errors.js';
import { builtin } from '../../core/lazy-builtins.js';

export class XattrError extends BuildliteError {
  readonly code: ErrorCode = 'INTERNAL';
}

/**
 * Which extended attributes a layer carries. `security.capability` is what
 * makes `ping` or `setcap`-ed binaries work; `user.*` is user data. Dropped:
 * `trusted.*` (overlay's own bookkeeping, and a layer must never be able to set
 * overlay's opaque/redirect/origin xattrs), `security.selinux` and other LSM
 * labels (host policy, not image content), and `user.overlay.*`.
 */
export function keepXattr(name: string): boolean {
  if (name === 'security.capability') return true;
  return name.startsWith('user.') && !name.startsWith('user.overlay.');
}

export interface TreeXattrs {
  /** Host paths of directories marked opaque by overlay. */
  readonly opaque: Set<string>;
  /** Kept xattrs by host path. */
  readonly attrs: Map<string, Map<string, Buffer>>;
}

/** Overlay's opaque-directory mark: `trusted.` as root, `user.` when mounted with `userxattr` (rootless). */
export const OPAQUE_XATTR = 'trusted.overlay.opaque';
export const USER_OPAQUE_XATTR = 'user.overlay.opaque';

/**
 * All xattrs of a tree with one `getfattr` (Node has no xattr API), run by a
 * host-command helper: its output streams through readline, and only kept
 * attributes and opaque marks stay in memory (overlay puts
 * `trusted.overlay.origin` on many files).
 */
export async function readTreeXattrs(dir: string, signal?: AbortSignal, opaqueXattr: string = OPAQUE_XATTR): Promise<TreeXattrs> {
  const r = await readFromHost(
    'getfattr',
    ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', '--', dir],
    (stdout) => parseGetfattr(stdout, opaqueXattr),
    // A tree of a million files takes long; the step's own timeout bounds the step.
    { timeoutMs: 3_600_000, ...(signal ? { signal } : {}) },
  );
  if (r.aborted) throw new XattrError(`getfattr on ${dir} was cancelled`);
  if (r.code !== 0 || !r.value) throw new XattrError(`getfattr on ${dir} failed (exit ${r.code}): ${r.stderr.slice(0, 500)}`);
  return r.value;
}

async function parseGetfattr(stdout: Readable, opaqueXattr: string): Promise<TreeXattrs> {
  const out: TreeXattrs = { opaque: new Set(), attrs: new Map() };
  let current: string | undefined;
  for await (const line of builtin('node:readline').createInterface({ input: stdout, crlfDelay: Infinity })) {
    if (line.startsWith('# file: ')) {
      current = unescapeName(line.slice('# file: '.length));
      continue;
    }
    const eq = line.indexOf('=');
    if (current === undefined || eq === -1) continue;
    const name = line.slice(0, eq);
    const value = decodeValue(line.slice(eq + 1));
    if (name === opaqueXattr) {
      if (value.toString('latin1') === 'y') out.opaque.add(current);
    } else if (keepXattr(name)) {
      let m = out.attrs.get(current);
      if (!m) out.attrs.set(current, (m = new Map()));
      m.set(name, value);
    }
  }
  return out;
}

/**
 * Sets xattrs on many files with one `setfattr --restore` spawn, never
 * following symlinks. Paths must already be resolved inside their root.
 */
export async function restoreXattrs(items: ReadonlyMap<string, ReadonlyMap<string, Buffer>>): Promise<void> {
  if (items.size === 0) return;
  const child = builtin('node:child_process').spawn('setfattr', ['-h', '--restore=-'], {
    stdio: ['pipe', 'ignore', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' },
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 1));
  });
  child.stdin.on('error', () => undefined); // reported through the exit code
  for (const [file, attrs] of items) {
    let text = `# file: ${escapeName(file)}\n`;
    for (const [name, value] of attrs) text += `${name}=0x${value.toString('hex')}\n`;
    if (!child.stdin.write(`${text}\n`)) await new Promise((r) => child.stdin.once('drain', r));
  }
  child.stdin.end();
  const code = await exited;
  if (code !== 0) throw new XattrError(`setfattr failed (exit ${code}): ${stderr.trim().slice(0, 500)}`);
}

/** getfattr writes `\\` and non-printable bytes as `\ooo` octal. */
function unescapeName(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 3;
    } else if (s[i] === '\\' && s[i + 1] === '\\') {
      bytes.push(0x5c);
      i += 1;
    } else {
      for (const b of Buffer.from(s[i]!, 'latin1')) bytes.push(b);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function escapeName(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    out += b === 0x5c || b < 0x21 || b > 0x7e || b === 0x3d ? `\\${b.toString(8).padStart(3, '0')}` : String.fromCharCode(b);
  }
  return out;
}

function decodeValue(v: string): Buffer {
  if (v.startsWith('0x')) return Buffer.from(v.slice(2), 'hex');
  if (v.startsWith('0s')) return Buffer.from(v.slice(2), 'base64');
  if (v.startsWith('"') && v.endsWith('"')) return Buffer.from(v.slice(1, -1), 'utf8');
  return Buffer.from(v, 'utf8');
}
