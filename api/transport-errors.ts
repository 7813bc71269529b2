import { status, type ServiceError } from '@grpc/grpc-js';
import { formatBytes } from '../core/bytes.js';
import { BuildliteError, type ErrorCode } from '../core/errors.js';

/**
 * Refusals that grpc-js makes itself, below any handler of ours: a server it
 * cannot reach, a message over a size limit. They carry no buildlite trailer,
 * only grpc-js's wording ("No connection established. Last error: Error:
 * connect ECONNREFUSED … Resolution note: "), so the client turns them into
 * one line that says what happened and where.
 */

/** `cannot reach ADDR: REASON` — refused, unknown name, no answer in time. */
export class ConnectError extends BuildliteError {
  readonly code: ErrorCode = 'UNAVAILABLE';
  // The server may be back in a moment: a resumable stream tries again.
  override readonly retryable = true;
  constructor(
    readonly address: string,
    readonly reason: string,
  ) {
    super(`cannot reach ${address}: ${reason}`);
  }
  override details(): Record<string, string> {
    return { address: this.address, reason: this.reason };
  }
}

/** A message over a gRPC size limit, refused from its length prefix (its bytes were never read). */
export class MessageSizeError extends BuildliteError {
  readonly code: ErrorCode = 'LIMIT_EXCEEDED';
  constructor(
    readonly messageBytes: number,
    readonly limitBytes: number,
    /** Whose limit: the server's, or this client's own receive limit. */
    readonly side: 'server' | 'client',
    message = `a message of ${formatBytes(messageBytes)} exceeds the ${side === 'server' ? "server's" : "client's"} limit of ${formatBytes(limitBytes)}`,
  ) {
    super(message);
  }
  override details(): Record<string, number | string> {
    return { messageBytes: this.messageBytes, limitBytes: this.limitBytes, side: this.side };
  }
}

/** Socket errors as a person says them. */
const ERRNO_REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'no route to host',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'unknown host',
  EAI_AGAIN: 'name lookup failed (temporary DNS failure)',
};

/** Where the call went and what this client's own receive limit is: both decide the wording. */
export interface TransportContext {
  readonly address: string;
  readonly receiveLimitBytes: number;
}

/**
 * A grpc-js status without our trailer → the error it stands for, or
 * undefined when it is not one of grpc-js's own refusals.
 */
export function transportError(err: Partial<ServiceError>, ctx: TransportContext): BuildliteError | undefined {
  const details = err.details ?? '';
  if (err.code === status.UNAVAILABLE) return new ConnectError(ctx.address, connectReason(details));
  if (err.code === status.RESOURCE_EXHAUSTED) {
    // "Received message larger than max (10485812 vs 4194304)"; a send refusal says "Sent message larger than max (N vs. M)".
    const m = /(Received|Sent) message larger than max \((\d+) vs\.? (\d+)\)/.exec(details);
    if (!m) return undefined;
    const [size, limit] = [Number(m[2]), Number(m[3])];
    // This client refuses only what it receives, at its own limit (it sends without one).
    const side = m[1] === 'Received' && limit === ctx.receiveLimitBytes ? 'client' : 'server';
    return new MessageSizeError(size, limit, side);
  }
  return undefined;
}

/** The reason inside grpc-js's UNAVAILABLE details, in a few words. */
export function connectReason(details: string): string {
  if (/Name resolution failed/i.test(details)) return 'the name does not resolve';
  const errno = /\b(E[A-Z][A-Z_]+)\b/.exec(details)?.[1];
  if (errno && ERRNO_REASONS[errno]) return ERRNO_REASONS[errno];
  // "No connection established. Last error: Protocol error (2026-…). Resolution note: " → "protocol error"
  const last = /Last error: (?:Error: )?(.*?)(?: \(\d{4}-[^)]*\))?\.? Resolution note/.exec(details)?.[1];
  const reason = (last ?? details.split('\n')[0] ?? '').trim().replace(/\.$/, '');
  return reason === '' ? 'no connection' : reason.charAt(0).toLowerCase() + reason.slice(1);
}
