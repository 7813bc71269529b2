/**
 * BuildEvents of one build attempt → the build's Redis Stream.
 *
 * The stream entry id is the event's seq (`<seq>-0`). A retry on another
 * worker starts its own builder whose events count from 1 again, so each
 * attempt offsets its events by the last seq already in the stream: a client
 * that resumes from seq n never sees a gap or a repeat. Every append is
 * fenced by the job's lock: it is written only while this attempt's token
 * still holds the BullMQ lock, so a worker that lost its job (and may not
 * know it yet) cannot add a single event beside the attempt that took over.
 */
import type { Redis } from 'ioredis';
import type { BuildEvent, BuildEventBody } from '../core/build.js';
import { EVENT_FIELD, NEXT_SEQ_LUA, seqOfStreamId } from './event-stream.js';
import { finishBuild, type FinishArgs } from './finish-build.js';
import { logsCommand } from './step-log-ref.js';
import type { Keys } from './redis-keys.js';

/**
 * KEYS: stream, lock key ('' = unfenced). ARGV: wanted seq, body JSON, max
 * length, token. Appends at the wanted seq or right after the stream's last
 * entry; returns the seq written, or 0 when the lock is not ours.
 */
const APPEND_LUA = `${NEXT_SEQ_LUA}
if KEYS[2] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[4] then return 0 end
local seq = nextSeq(KEYS[1], ARGV[1])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], tostring(seq) .. '-0', '${EVENT_FIELD}', ARGV[2])
return seq
`;

export interface EventWriterOptions {
  /** Approximate cap on stream entries (XADD MAXLEN ~): bounds Redis memory for a runaway build. */
  readonly maxLen: number;
  /** Log bytes of one build that go to the stream; past it, one marker and no more log events. */
  readonly maxLogBytes: number;
  readonly eventsTtlS: number;
  readonly recordTtlS: number;
}

export const EVENT_WRITER_DEFAULTS = {
  // ~50k events is far beyond a normal build (each step is a handful of events plus capped logs).
  maxLen: 50_000,
  // The builder already caps each step's log; this bounds the sum for builds with many chatty steps.
  maxLogBytes: 8 << 20,
  eventsTtlS: 3600,
  recordTtlS: 7 * 24 * 3600,
} satisfies Required<EventWriterOptions>;

export class EventWriter {
  private base = 0;
  private last = 0;
  private logBytes = 0;
  private logCapped = false;
  /** Set once a write was refused because this attempt no longer holds the job's lock. */
  lost = false;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    readonly buildId: string,
    private readonly opts: EventWriterOptions = EVENT_WRITER_DEFAULTS,
    /** The job's queue and this attempt's lock token; without it appends are not fenced (tests, embedded tools). */
    private readonly owner?: { readonly queue: string; readonly token: string },
  ) {}

  /** Picks the offset of this attempt: after whatever an earlier attempt wrote. */
  async begin(): Promise<void> {
    const last = (await this.redis.xrevrange(this.keys.events(this.buildId), '+', '-', 'COUNT', 1))[0];
    this.base = last ? seqOfStreamId(last[0]) : 0;
    this.last = this.base;
  }

  /** The seq the next event of this attempt gets. */
  get nextSeq(): number {
    return this.last + 1;
  }

  /** Appends a non-terminal event; returns false once this writer has lost the stream. */
  async append(ev: BuildEvent | BuildEventBody): Promise<boolean> {
    if (this.lost) return false;
    let body: BuildEventBody = stripSeq(ev);
    if (body.type === 'log') {
      if (this.logCapped) return true;
      this.logBytes += body.data.length;
      if (this.logBytes > this.opts.maxLogBytes) {
        this.logCapped = true;
        body = { type: 'warning', message: `log output of this build passed ${this.opts.maxLogBytes} bytes: further log lines are not streamed; each step's full log is kept: ${logsCommand(this.buildId)}` };
      }
    }
    const seq = 'seq' in ev && typeof ev.seq === 'number' ? Math.max(this.base + ev.seq, this.last + 1) : this.last + 1;
    const lock = this.owner ? this.keys.jobLock(this.owner.queue, this.buildId) : '';
    const written = Number(await this.redis.eval(APPEND_LUA, 2, this.keys.events(this.buildId), lock, seq, JSON.stringify(body), this.opts.maxLen, this.owner?.token ?? ''));
    if (written === 0) {
      this.lost = true;
      return false;
    }
    this.last = written;
    return true;
  }

  /** Writes the terminal event and state once; false when someone else finished the build or owns the job. */
  async finish(a: Omit<FinishArgs, 'buildId' | 'seq' | 'eventsTtlS' | 'recordTtlS'>): Promise<boolean> {
    if (this.lost) return false;
    const seq = await finishBuild(this.redis, this.keys, {
      ...a,
      buildId: this.buildId,
      seq: this.last + 1,
      eventsTtlS: this.opts.eventsTtlS,
      recordTtlS: this.opts.recordTtlS,
    });
    if (seq > 0) this.last = seq;
    return seq > 0;
  }
}

function stripSeq(ev: BuildEvent | BuildEventBody): BuildEventBody {
  if (!('seq' in ev)) return ev;
  const { seq: _seq, ...body } = ev;
  return body as BuildEventBody;
}
