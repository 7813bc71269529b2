/**
 * The file name a server suggests in `Content-Disposition` (RFC 6266), read as
 * BuildKit's http source reads it (Go's mime.ParseMediaType, then
 * pathutil.SafeFileName): `filename*` (RFC 5987, UTF-8 or US-ASCII) wins over
 * `filename`; a header that does not parse is ignored as a whole; a name ending
 * in `/` is ignored; the rest is cut to its last path segment. What is left
 * must be a usable base name, or there is none: never empty, `.`, `..`, a
 * control character, or longer than a file name may be. The server never
 * picks a path (docs/security.md T7).
 */
export function contentDispositionFilename(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const params = parseParams(header);
  if (!params) return undefined;
  const extended = params.get('filename*');
  const name = (extended !== undefined ? decodeExtValue(extended) : undefined) ?? params.get('filename');
  if (name === undefined || name === '' || name.endsWith('/')) return undefined;
  return safeBaseName(name);
}

/** Linux's NAME_MAX: a longer name cannot be created. */
const NAME_MAX_BYTES = 255;

/** The last segment of `name`, if it can be a file's name inside a directory; else undefined. */
export function safeBaseName(name: string): string | undefined {
  const base = name.trim().split('/').filter((s) => s !== '').pop() ?? '';
  if (base === '' || base === '.' || base === '..') return undefined;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(base)) return undefined;
  if (Buffer.byteLength(base) > NAME_MAX_BYTES) return undefined;
  return base;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/;

/** `type; k=v; k2="quoted"` → lower-cased keys to values; undefined when the header is malformed or repeats a key. */
function parseParams(header: string): Map<string, string> | undefined {
  let rest = header.trim();
  const type = TOKEN.exec(rest);
  if (!type) return undefined;
  rest = rest.slice(type[0].length);
  const out = new Map<string, string>();
  for (;;) {
    rest = rest.trimStart();
    if (rest === '') return out;
    if (!rest.startsWith(';')) return undefined;
    rest = rest.slice(1).trimStart();
    if (rest === '') return out; // a trailing `;` is tolerated, as Go does
    const key = TOKEN.exec(rest);
    if (!key) return undefined;
    rest = rest.slice(key[0].length).trimStart();
    if (!rest.startsWith('=')) return undefined;
    rest = rest.slice(1).trimStart();
    const value = readValue(rest);
    if (!value) return undefined;
    rest = rest.slice(value.length);
    const k = key[0].toLowerCase();
    if (out.has(k) && out.get(k) !== value.text) return undefined;
    out.set(k, value.text);
  }
}

/** A token or a quoted-string (backslash escapes one character), with how much input it took. */
function readValue(s: string): { text: string; length: number } | undefined {
  if (!s.startsWith('"')) {
    const t = TOKEN.exec(s);
    return t ? { text: t[0], length: t[0].length } : undefined;
  }
  let text = '';
  for (let i = 1; i < s.length; i++) {
    const c = s[i]!;
    if (c === '"') return { text, length: i + 1 };
    if (c === '\\' && i + 1 < s.length) text += s[++i];
    else text += c;
  }
  return undefined; // unterminated
}

/** RFC 5987 `charset'lang'pct-encoded`, UTF-8 or US-ASCII only (as Go); undefined when it does not decode. */
function decodeExtValue(v: string): string | undefined {
  const parts = v.split("'");
  if (parts.length !== 3) return undefined;
  const charset = parts[0]!.toLowerCase();
  if (charset !== 'utf-8' && charset !== 'us-ascii') return undefined;
  try {
    return decodeURIComponent(parts[2]!);
  } catch {
    return undefined;
  }
}
