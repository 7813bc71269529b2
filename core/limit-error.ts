/**
 * The error every operator limit raises when a build passes it, wherever it
 * is enforced (executor, pulls, layers, disk, the whole-build clock). Its wire
 * details carry `limit` (a LimitName) and `value` (the limit's number), so the
 * service can count builds by the limit they hit and `--metadata-file` can
 * name it; its message names the limit in words with its value.
 */
import type { SourceRange } from './errors.js';
import { formatLimit, type LimitedReason, type LimitName } from './limits.js';
import { LimitExceededError } from './streams.js';

/** Each limit as a message names it: "the memory limit of 256 MiB". */
const LIMIT_WORDS: Readonly<Record<LimitName, string>> = {
  stepTimeoutMs: 'step timeout',
  buildTimeoutMs: 'build timeout',
  memoryBytes: 'memory limit',
  cpus: 'CPU quota',
  pids: 'pids limit',
  maxContextBytes: 'context size limit',
  maxDockerfileBytes: 'Dockerfile size limit',
  maxLayerBytes: 'layer size limit',
  maxLayerUnpackedBytes: 'unpacked layer size limit',
  maxImageBytes: 'image size limit',
  maxImageUnpackedBytes: 'unpacked image size limit',
  maxStepLogBytes: 'step log limit',
  maxBuildDiskBytes: 'build disk limit',
};

/** `the memory limit of 256 MiB`. */
export function limitPhrase(name: LimitName, value: number): string {
  return `the ${LIMIT_WORDS[name]} of ${formatLimit(name, value)}`;
}

type Details = Record<string, string | number | boolean>;

/**
 * A limit or quota was hit: a build's limit (a LimitName) or a client quota
 * refused at submit (`concurrency`, `rate`). `details.retryAfterMs`, when set,
 * says when the same call may succeed.
 */
export class LimitError extends LimitExceededError {
  private readonly extra: Details;
  readonly retryAfterMs: number | undefined;
  constructor(
    readonly limit: LimitedReason,
    readonly value: number,
    message: string,
    options: { cause?: unknown; range?: SourceRange; details?: Details; retryAfterMs?: number } = {},
  ) {
    super(message, options);
    this.extra = options.details ?? {};
    this.retryAfterMs = options.retryAfterMs;
  }

  override details(): Details {
    return { ...this.extra, limit: this.limit, value: this.value, ...(this.retryAfterMs !== undefined ? { retryAfterMs: this.retryAfterMs } : {}) };
  }
}

/** `<subject> exceeded the memory limit of 256 MiB<note>`: the usual shape of the message. */
export function limitExceeded(name: LimitName, value: number, subject: string, note = '', options: { details?: Details; cause?: unknown } = {}): LimitError {
  return new LimitError(name, value, `${subject} exceeded ${limitPhrase(name, value)}${note}`, options);
}
