import { Metadata, status, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { BuildliteError, ERROR_CODES, RemoteError, toWire, type ErrorCode, type WireError } from '../core/errors.js';
import { transportError, type TransportContext } from './transport-errors.js';

/**
 * BuildliteError ↔ gRPC status, in one place. The status code is for gRPC
 * clients in any language; the full WireError (code, message, range,
 * details) rides in the `buildlite-error-bin` trailer so our own client
 * rebuilds exactly the error the server had.
 */
export const ERROR_METADATA_KEY = 'buildlite-error-bin';

const TO_GRPC: Record<ErrorCode, status> = {
  DOCKERFILE: status.INVALID_ARGUMENT,
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  INVALID_OPTION: status.INVALID_ARGUMENT,
  INVALID_DIGEST: status.INVALID_ARGUMENT,
  UNSAFE_PATH: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  EXEC_FAILED: status.ABORTED,
  SANDBOX: status.INTERNAL,
  REGISTRY: status.UNAVAILABLE,
  DIGEST_MISMATCH: status.DATA_LOSS,
  LIMIT_EXCEEDED: status.RESOURCE_EXHAUSTED,
  PERMISSION_DENIED: status.PERMISSION_DENIED,
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  UNAVAILABLE: status.UNAVAILABLE,
  CANCELLED: status.CANCELLED,
  STORE: status.INTERNAL,
  INTERNAL: status.INTERNAL,
};

/** For statuses that did not come from our server (grpc-js itself, a proxy). */
const FROM_GRPC: Partial<Record<status, ErrorCode>> = {
  [status.INVALID_ARGUMENT]: 'INVALID_ARGUMENT',
  [status.NOT_FOUND]: 'NOT_FOUND',
  [status.RESOURCE_EXHAUSTED]: 'LIMIT_EXCEEDED',
  [status.PERMISSION_DENIED]: 'PERMISSION_DENIED',
  [status.UNAUTHENTICATED]: 'UNAUTHENTICATED',
  [status.CANCELLED]: 'CANCELLED',
  [status.FAILED_PRECONDITION]: 'INVALID_ARGUMENT',
};

export function grpcCodeOf(code: ErrorCode): status {
  return TO_GRPC[code] ?? status.INTERNAL;
}

/** Any thrown value → a status for a handler's callback or `call.emit('error')`. Unknown errors are INTERNAL with a generic message. */
export function toStatus(err: unknown): Partial<StatusObject> & { code: status; details: string } {
  const wire: WireError = err instanceof BuildliteError ? err.toWire() : { ...toWire(err), message: 'internal error' };
  const metadata = new Metadata();
  metadata.set(ERROR_METADATA_KEY, Buffer.from(JSON.stringify(wire)));
  // A retryable internal error is a dependency away (Redis): UNAVAILABLE tells gRPC clients to retry.
  const code = wire.code === 'INTERNAL' && wire.retryable ? status.UNAVAILABLE : grpcCodeOf(wire.code);
  return { code, details: wire.message, metadata };
}

/**
 * A failed call on the client side → a BuildliteError with the server's code
 * and context. Given the call's transport context, grpc-js's own refusals
 * (unreachable server, message over a size limit) become one clear line.
 */
export function fromStatus(err: ServiceError | Error, transport?: TransportContext): BuildliteError {
  const se = err as Partial<ServiceError>;
  const raw = se.metadata?.get(ERROR_METADATA_KEY)[0];
  if (raw !== undefined) {
    try {
      const wire = JSON.parse(Buffer.isBuffer(raw) ? raw.toString() : raw) as WireError;
      if (typeof wire.code === 'string' && typeof wire.message === 'string') return new RemoteError(wire);
    } catch {
      // fall through to the status code
    }
  }
  const own = transport ? transportError(se, transport) : undefined;
  if (own) return own;
  const code = (se.code !== undefined ? FROM_GRPC[se.code] : undefined) ?? 'INTERNAL';
  const retryable = se.code === status.UNAVAILABLE || se.code === status.DEADLINE_EXCEEDED;
  return new RemoteError({ code: Object.hasOwn(ERROR_CODES, code) ? code : 'INTERNAL', message: se.details || err.message, retryable, details: { grpcCode: se.code ?? -1 } });
}
