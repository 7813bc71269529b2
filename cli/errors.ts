import { BuildliteError, RemoteError } from '../core/errors.js';
import { UsageError } from './usage.js';

/**
 * Exit codes of every command (help and README list them): 0 ok, 1 the build
 * or the command failed, 2 bad command line, 3 a build service refused the
 * token (missing, unknown, or not allowed the call). CI can tell an expired
 * or mistyped secret from a broken build: retrying will not fix the first.
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, refused: 3 } as const;

/** The exit code for an error that ended a command. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError) return EXIT.usage;
  // Only a build service's answer: a registry's 401 during a local push is an ordinary failure.
  if (err instanceof RemoteError && (err.code === 'UNAUTHENTICATED' || err.code === 'PERMISSION_DENIED')) return EXIT.refused;
  return EXIT.failed;
}

/** One line for an unexpected error; typed errors carry their own context, others their message. */
export function formatError(err: unknown): string {
  if (err instanceof BuildliteError) return err.message;
  if (err instanceof Error) return process.env['BUILDLITE_DEBUG'] ? (err.stack ?? err.message) : err.message;
  return String(err);
}
