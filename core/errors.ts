/**
 * Every error buildlite raises on purpose is a BuildliteError with a stable
 * code. The code, message and context survive the wire (toWire/fromWire), so a
 * CLI talking to a remote service prints the same thing as an embedded build.
 */

/** Every code, with what it means; a test checks each one is documented here. */
export const ERROR_CODES = {
  DOCKERFILE: 'the Dockerfile is invalid (the error names the line)',
  INVALID_ARGUMENT: 'a request field or option has a bad value',
  INVALID_OPTION: 'an options object was built with a bad value',
  NOT_FOUND: 'a named thing (stage, file, blob, build) does not exist',
  EXEC_FAILED: 'a RUN step exited non-zero or was killed by a signal (an operator limit that ended it is LIMIT_EXCEEDED)',
  SANDBOX: 'the sandbox could not be set up or torn down',
  REGISTRY: 'a registry answered with an error',
  DIGEST_MISMATCH: 'bytes did not match the digest or size they were announced with',
  INVALID_DIGEST: 'a digest string is malformed (want sha256:<64 lowercase hex>)',
  LIMIT_EXCEEDED: 'an input or a build passed a size, count, time or resource limit (details.limit names an operator limit: core/limits.ts)',
  UNSAFE_PATH: 'a path tried to leave its root',
  PERMISSION_DENIED: 'the caller or build is not allowed to do this',
  UNAUTHENTICATED: 'credentials are missing or wrong',
  UNAVAILABLE: 'a server could not be reached or stopped answering (refused, unknown name, timeout)',
  CANCELLED: 'the build was cancelled',
  STORE: 'the local content or cache store failed',
  INTERNAL: 'a bug: please report it',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** A position in a source file, 1-based lines and columns, inclusive. */
export interface SourceRange {
  readonly file: string;
  readonly startLine: number;
  readonly endLine: number;
  readonly startColumn?: number;
  readonly endColumn?: number;
}

export interface WireError {
  readonly code: ErrorCode;
  readonly message: string;
  readonly retryable: boolean;
  readonly range?: SourceRange;
  readonly details?: Record<string, string | number | boolean>;
}

export abstract class BuildliteError extends Error {
  abstract readonly code: ErrorCode;
  /** True when the same request may succeed later (a registry 503, a lost worker). */
  readonly retryable: boolean = false;
  /** Where in the Dockerfile, when the error belongs to a line. */
  range?: SourceRange;

  constructor(message: string, options?: { cause?: unknown; range?: SourceRange }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    if (options?.range) this.range = options.range;
  }

  /** Extra context that is safe to show and send (never secrets). */
  details(): Record<string, string | number | boolean> {
    return {};
  }

  toWire(): WireError {
    const w: WireError = {
      code: this.code,
      message: this.message,
      retryable: this.retryable,
      ...(this.range ? { range: this.range } : {}),
      details: this.details(),
    };
    return w;
  }
}

/** The one concrete class for codes that need no fields of their own. */
export class CodedError extends BuildliteError {
  override readonly retryable: boolean;
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; range?: SourceRange; retryable?: boolean },
  ) {
    super(message, options);
    this.retryable = options?.retryable ?? false;
  }
}

/** An error from the other side of a wire; keeps the code and context it had there. */
export class RemoteError extends BuildliteError {
  override readonly retryable: boolean;
  readonly code: ErrorCode;
  readonly remoteDetails: Record<string, string | number | boolean>;
  constructor(wire: WireError) {
    super(wire.message, wire.range ? { range: wire.range } : undefined);
    // hasOwn, not `in`: a peer's 'toString' or '__proto__' is not a code.
    this.code = Object.hasOwn(ERROR_CODES, wire.code) ? wire.code : 'INTERNAL';
    this.retryable = wire.retryable;
    this.remoteDetails = wire.details ?? {};
  }
  override details(): Record<string, string | number | boolean> {
    return this.remoteDetails;
  }
}

export function fromWire(wire: WireError): BuildliteError {
  return new RemoteError(wire);
}

/** Any thrown value as a wire error; unknown errors become INTERNAL. */
export function toWire(err: unknown): WireError {
  if (err instanceof BuildliteError) return err.toWire();
  const message = err instanceof Error ? err.message : String(err);
  return { code: 'INTERNAL', message, retryable: false };
}

export function isCancelled(err: unknown): boolean {
  return (
    (err instanceof BuildliteError && err.code === 'CANCELLED') ||
    (err instanceof Error && err.name === 'AbortError')
  );
}

/** Attach a source range to an error once, at the level that knows it (STYLE rule 10). */
export function withLocation<E>(err: E, range: SourceRange): E {
  if (err instanceof BuildliteError && !err.range) err.range = range;
  return err;
}
