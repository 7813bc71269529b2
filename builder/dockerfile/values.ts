import { InvalidFileModeError, parseFileMode, type FileModeSpec } from '../../core/file-mode.js';
import type { Platform } from '../../core/oci.js';
import { parsePlatform as parseCorePlatform, PlatformError } from '../../core/platform.js';
import type { UserSpec } from '../graph/index.js';
import { DockerfileError } from './errors.js';

/** Parsers for the typed values instructions and flags carry. Each throws a DockerfileError without a range. */

const UNIT_NS: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** A Go duration (`1h30m`, `1.5s`, `0`) in nanoseconds, as HEALTHCHECK flags take. */
export function parseDuration(text: string): number {
  const bad = (): DockerfileError => new DockerfileError(`invalid duration ${JSON.stringify(text)}`);
  let s = text;
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    if (s.startsWith('-')) sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') throw bad();
  let total = 0;
  const re = /^([0-9]*(?:\.[0-9]*)?)([a-zµμ]+)/;
  while (s.length > 0) {
    const m = re.exec(s);
    if (!m || m[1] === '' || m[1] === '.') throw bad();
    const unit = UNIT_NS[m[2] as string];
    if (unit === undefined) throw bad();
    total += Number(m[1]) * unit;
    s = s.slice(m[0].length);
  }
  return sign * Math.round(total);
}

const SIGNALS = new Set([
  'ABRT', 'ALRM', 'BUS', 'CHLD', 'CLD', 'CONT', 'FPE', 'HUP', 'ILL', 'INT', 'IO', 'IOT', 'KILL', 'PIPE', 'POLL', 'PROF',
  'PWR', 'QUIT', 'SEGV', 'STKFLT', 'STOP', 'SYS', 'TERM', 'TRAP', 'TSTP', 'TTIN', 'TTOU', 'URG', 'USR1', 'USR2',
  'VTALRM', 'WINCH', 'XCPU', 'XFSZ',
]);

/** STOPSIGNAL: a number, a name (`SIGQUIT`, `QUIT`) or `SIGRTMIN+n`. Returned as written. */
export function checkSignal(sig: string): string {
  if (/^[0-9]+$/.test(sig)) {
    const n = Number(sig);
    if (n >= 1 && n <= 64) return sig;
  } else {
    const name = sig.toUpperCase().replace(/^SIG/, '');
    if (SIGNALS.has(name) || /^RTM(IN|AX)([+-][0-9]+)?$/.test(name)) return sig;
  }
  throw new DockerfileError(`invalid signal: ${JSON.stringify(sig)}`);
}

/** `name`, `uid`, `name:group`, `uid:gid`. */
export function parseUserSpec(text: string, what = 'user'): UserSpec {
  if (text === '') throw new DockerfileError(`${what} can not be empty`);
  const i = text.indexOf(':');
  if (i < 0) return { user: text };
  const user = text.slice(0, i);
  const group = text.slice(i + 1);
  if (user === '' || group === '' || group.includes(':')) throw new DockerfileError(`invalid ${what} ${JSON.stringify(text)}`);
  return { user, group };
}

/** FROM --platform's value (`linux/arm64`, `$BUILDPLATFORM` once expanded), normalised as core/platform.ts does. */
export function parsePlatform(text: string): Platform {
  try {
    return parseCorePlatform(text);
  } catch (err) {
    if (err instanceof PlatformError) throw new DockerfileError(err.message);
    throw err;
  }
}

/** An octal mode such as `755` or `0640`. */
export function parseOctal(text: string, what: string): number {
  if (!/^[0-7]{1,4}$/.test(text)) throw new DockerfileError(`invalid ${what} ${JSON.stringify(text)}: want an octal mode`);
  return parseInt(text, 8);
}

/** `--chmod`: octal, or chmod(1)'s symbolic form (core/file-mode.ts). */
export function parseChmod(text: string): FileModeSpec {
  try {
    return parseFileMode(text);
  } catch (err) {
    if (err instanceof InvalidFileModeError) throw new DockerfileError(err.message, { cause: err });
    throw err;
  }
}

export function parseNonNegativeInt(text: string, what: string): number {
  if (!/^[0-9]{1,10}$/.test(text)) throw new DockerfileError(`invalid ${what} ${JSON.stringify(text)}`);
  return Number(text);
}

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3 };

/** Sizes such as `64m` or `1048576` (tmpfs `size=`). */
export function parseBytes(text: string, what: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)$/.exec(text);
  const unit = m ? BYTE_UNITS[(m[2] ?? '').toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new DockerfileError(`invalid ${what} ${JSON.stringify(text)}`);
  return Math.floor(Number(m[1]) * unit);
}

export function parseBool(text: string, what: string): boolean {
  switch (text.toLowerCase()) {
    case '1': case 't': case 'true': return true;
    case '0': case 'f': case 'false': return false;
    default: throw new DockerfileError(`invalid boolean ${JSON.stringify(text)} for ${what}`);
  }
}
