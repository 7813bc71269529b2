/**
 * The tar format as we write and read it: ustar headers, PAX extended headers
 * for what does not fit (long or non-ASCII names, big ids and sizes, xattrs),
 * and on reading also GNU long names. Our own codec because xattr values are
 * bytes, and tar-stream turns PAX values into UTF-8 strings (a
 * `security.capability` value would not survive).
 */
import { BuildliteError, type ErrorCode } from '../../core/errors.js';

export type TarType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

export interface TarHeader {
  /** Relative, `/`-separated, no leading `./`; directories end in `/` when written. */
  name: string;
  type: TarType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes by name, kept as PAX `SCHILY.xattr.<name>`. */
  xattrs?: Map<string, Buffer>;
}

export const BLOCK = 512;
export const END_OF_ARCHIVE = Buffer.alloc(BLOCK * 2);
export const XATTR_PAX_PREFIX = 'SCHILY.xattr.';

const TYPE_FLAGS: Record<TarType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
};

const MAX_OCTAL_7 = 0o7777777;
const MAX_OCTAL_11 = 0o77777777777;

export function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return rest === 0 ? Buffer.alloc(0) : Buffer.alloc(BLOCK - rest);
}

/**
 * The header block(s) of one entry. Deterministic: no user or group names,
 * no atime/ctime, PAX only when a field does not fit, PAX records sorted.
 */
export function encodeHeader(h: TarHeader): Buffer {
  const pax: Array<[string, Buffer]> = [];
  const nameFits = isAscii(h.name) && Buffer.byteLength(h.name) <= 100;
  if (!nameFits) pax.push(['path', Buffer.from(h.name)]);
  const link = h.linkname ?? '';
  if (!(isAscii(link) && Buffer.byteLength(link) <= 100)) pax.push(['linkpath', Buffer.from(link)]);
  if (h.size > MAX_OCTAL_11) pax.push(['size', Buffer.from(String(h.size))]);
  if (h.uid > MAX_OCTAL_7) pax.push(['uid', Buffer.from(String(h.uid))]);
  if (h.gid > MAX_OCTAL_7) pax.push(['gid', Buffer.from(String(h.gid))]);
  for (const [k, v] of [...(h.xattrs ?? new Map<string, Buffer>())].sort(([a], [b]) => cmp(a, b))) {
    pax.push([XATTR_PAX_PREFIX + k, v]);
  }
  const main = ustarBlock({
    name: nameFits ? h.name : asciiStub(h.name),
    mode: h.mode & 0o7777,
    uid: Math.min(h.uid, MAX_OCTAL_7),
    gid: Math.min(h.gid, MAX_OCTAL_7),
    size: h.size > MAX_OCTAL_11 ? 0 : h.size,
    mtime: Math.max(0, Math.min(h.mtime, MAX_OCTAL_11)),
    flag: TYPE_FLAGS[h.type],
    linkname: pax.some(([k]) => k === 'linkpath') ? asciiStub(link) : link,
    devmajor: h.devmajor ?? 0,
    devminor: h.devminor ?? 0,
  });
  if (pax.length === 0) return main;
  const body = Buffer.concat(pax.map(([k, v]) => paxRecord(k, v)));
  const paxHeader = ustarBlock({
    name: 'PaxHeader',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: body.length,
    mtime: Math.max(0, Math.min(h.mtime, MAX_OCTAL_11)),
    flag: 'x',
    linkname: '',
    devmajor: 0,
    devminor: 0,
  });
  return Buffer.concat([paxHeader, body, padding(body.length), main]);
}

interface RawFields {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  flag: string;
  linkname: string;
  devmajor: number;
  devminor: number;
}

function ustarBlock(f: RawFields): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(f.name, 0, 100, 'utf8');
  octal(b, 100, 8, f.mode);
  octal(b, 108, 8, f.uid);
  octal(b, 116, 8, f.gid);
  octal(b, 124, 12, f.size);
  octal(b, 136, 12, f.mtime);
  b.write(f.flag, 156, 1, 'ascii');
  b.write(f.linkname, 157, 100, 'utf8');
  b.write('ustar\0', 257, 6, 'ascii');
  b.write('00', 263, 2, 'ascii');
  octal(b, 329, 8, f.devmajor);
  octal(b, 337, 8, f.devminor);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return b;
}

function octal(b: Buffer, off: number, len: number, value: number): void {
  b.write(`${Math.floor(value).toString(8).padStart(len - 1, '0')}\0`, off, len, 'ascii');
}

/** `"<len> <key>=<value>\n"` where len counts the whole record, its own digits included. */
function paxRecord(key: string, value: Buffer): Buffer {
  const rest = Buffer.byteLength(key) + value.length + 3; // space, '=', newline
  let len = rest + String(rest).length;
  while (String(len).length + rest !== len) len = String(len).length + rest;
  return Buffer.concat([Buffer.from(`${len} ${key}=`), value, Buffer.from('\n')]);
}

/** A readable placeholder for the ustar field when the real name is in PAX. */
function asciiStub(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '_').slice(-100).replace(/^\/+/, '');
}

function isAscii(s: string): boolean {
  return /^[\x00-\x7f]*$/.test(s);
}

/** Byte order of UTF-8, so entry order does not depend on locale or UTF-16 quirks. */
export function cmp(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

// ---- decoding ----

export type RawType = TarType | 'pax' | 'pax-global' | 'gnu-longname' | 'gnu-longlink' | 'other';

export interface RawHeader {
  name: string;
  type: RawType;
  flag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
}

/** The bytes are not a tar we can read safely (bad checksum, truncated, unknown entry type). */
export class TarFormatError extends BuildliteError {
  readonly code: ErrorCode = 'INVALID_ARGUMENT';
}

/** Whether a header block's stored checksum matches (the unsigned sum, or the historic signed one). */
export function headerChecksumOk(b: Buffer): boolean {
  if (b.length < BLOCK) return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const x = i >= 148 && i < 156 ? 0x20 : b[i]!;
    unsigned += x;
    signed += x > 127 ? x - 256 : x;
  }
  let stored: number;
  try {
    stored = parseNumber(b, 148, 8);
  } catch {
    return false;
  }
  return stored === unsigned || stored === signed;
}

/** Decodes one header block; null for an all-zero block (end of archive). */
export function decodeHeader(b: Buffer): RawHeader | null {
  if (b.every((x) => x === 0)) return null;
  if (!headerChecksumOk(b)) throw new TarFormatError('tar header checksum mismatch');
  const flag = b[156] === 0 ? '0' : String.fromCharCode(b[156]!);
  const magic = b.toString('latin1', 257, 263);
  let name = cstr(b, 0, 100);
  if (magic === 'ustar\0') {
    const prefix = cstr(b, 345, 155);
    if (prefix) name = `${prefix}/${name}`;
  }
  return {
    name,
    type: typeOf(flag),
    flag,
    mode: parseNumber(b, 100, 8),
    uid: parseNumber(b, 108, 8),
    gid: parseNumber(b, 116, 8),
    size: parseNumber(b, 124, 12),
    mtime: parseNumber(b, 136, 12),
    linkname: cstr(b, 157, 100),
    devmajor: parseNumber(b, 329, 8),
    devminor: parseNumber(b, 337, 8),
  };
}

function typeOf(flag: string): RawType {
  switch (flag) {
    case '0':
    case '7':
      return 'file';
    case '1':
      return 'hardlink';
    case '2':
      return 'symlink';
    case '3':
      return 'char';
    case '4':
      return 'block';
    case '5':
      return 'dir';
    case '6':
      return 'fifo';
    case 'x':
      return 'pax';
    case 'g':
      return 'pax-global';
    case 'L':
      return 'gnu-longname';
    case 'K':
      return 'gnu-longlink';
    default:
      return 'other';
  }
}

function cstr(b: Buffer, off: number, len: number): string {
  const end = b.indexOf(0, off);
  return b.toString('utf8', off, end === -1 || end > off + len ? off + len : end);
}

/** Octal, or GNU base-256 when the high bit of the first byte is set. */
function parseNumber(b: Buffer, off: number, len: number): number {
  if (b[off]! & 0x80) {
    let v = b[off]! & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i]!;
    if (!Number.isSafeInteger(v)) throw new TarFormatError('tar number field out of range');
    return v;
  }
  const s = b.toString('latin1', off, off + len).replace(/[\0 ]+$/, '').replace(/^[\0 ]+/, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarFormatError(`bad octal field ${JSON.stringify(s.slice(0, 20))}`);
  return parseInt(s, 8);
}

/** PAX records as raw bytes per key, so binary xattr values stay intact. */
export function decodePax(body: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < body.length) {
    const sp = body.indexOf(0x20, pos);
    if (sp === -1) break;
    const len = parseInt(body.toString('latin1', pos, sp), 10);
    if (!Number.isInteger(len) || len <= 0 || pos + len > body.length) throw new TarFormatError('bad PAX record');
    const rec = body.subarray(sp + 1, pos + len - 1); // drop the trailing newline
    const eq = rec.indexOf(0x3d);
    if (eq === -1) throw new TarFormatError('bad PAX record');
    out.set(rec.toString('utf8', 0, eq), Buffer.from(rec.subarray(eq + 1)));
    pos += len;
  }
  return out;
}
