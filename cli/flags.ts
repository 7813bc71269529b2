import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseNetTimeouts, netTimeouts, type NetTimeouts } from '../core/net-faults.js';
import { parseReference } from '../core/reference.js';
import { runsRootless } from '../core/userns.js';
import { UsageError } from './usage.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** node:util parseArgs with our error shape: an unknown flag or a missing value is a usage error (exit 2). */
export function parseFlags<O extends Options>(command: string, argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    const msg = (err as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(msg, command);
  }
}

/** `k=v,k2=v2` (the --output / --secret / --cache-* syntax) into a map; repeated keys are an error. */
export function parseKeyValues(command: string, flag: string, value: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of value.split(',')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const k = (eq < 0 ? part : part.slice(0, eq)).trim();
    const v = eq < 0 ? 'true' : part.slice(eq + 1);
    if (out.has(k)) throw new UsageError(`${flag}: "${k}" given twice in "${value}"`, command);
    out.set(k, v);
  }
  return out;
}

/** The state root: `/var/lib/buildlite` for the host's root; for anyone else (root of a user namespace included, cli/userns-exec.ts) their own data dir. */
export function defaultRoot(): string {
  if (process.env['BUILDLITE_ROOT']) return process.env['BUILDLITE_ROOT'];
  if (!runsRootless()) return '/var/lib/buildlite';
  const data = process.env['XDG_DATA_HOME'] ?? `${process.env['HOME'] ?? '.'}/.local/share`;
  return `${data}/buildlite`;
}

/** An image reference given on the command line, checked now: a bad one (or one with a password) is a usage error, echoed redacted. */
export function checkReferenceFlag(command: string, flag: string, ref: string): string {
  try {
    parseReference(ref);
  } catch (err) {
    throw new UsageError(`${flag}: ${err instanceof Error ? err.message : String(err)}`, command);
  }
  return ref;
}

/** `--http-timeouts connect=D,headers=D,idle=D`, else `BUILDLITE_HTTP_TIMEOUTS`; undefined when neither is set. */
export function httpTimeoutsFlag(command: string, value: string | undefined): Partial<NetTimeouts> | undefined {
  const spec = value ?? process.env['BUILDLITE_HTTP_TIMEOUTS'];
  if (spec === undefined || spec === '') return undefined;
  const from = value !== undefined ? '--http-timeouts' : 'BUILDLITE_HTTP_TIMEOUTS';
  try {
    const t = parseNetTimeouts(spec);
    netTimeouts(t, from); // bounds, now rather than when the builder starts
    return t;
  } catch (err) {
    throw new UsageError(`${from} "${spec}": ${err instanceof Error ? err.message : String(err)}`, command);
  }
}

export function isTruthy(v: string | undefined): boolean {
  return v !== undefined && ['1', 'true', 'yes'].includes(v.toLowerCase());
}
