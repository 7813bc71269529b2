/**
 * Redis key layout under one prefix (default `bl`). BullMQ's own keys live
 * under `<prefix>:bull`. Build streams use entry ids `<seq>-0`, so Redis itself
 * refuses an event whose seq is not above the last one: a stale writer cannot
 * add a duplicate or reorder the stream.
 */
export class Keys {
  constructor(readonly prefix = 'bl') {}
  get bullPrefix(): string {
    return `${this.prefix}:bull`;
  }
  build(id: string): string {
    return `${this.prefix}:build:${id}`;
  }
  events(id: string): string {
    return `${this.prefix}:events:${id}`;
  }
  /** Sorted set of build ids by creation time, per client and for all. */
  clientBuilds(client: string): string {
    return `${this.prefix}:client:${client}:builds`;
  }
  // A client's quota state. FINISH_LUA (finish-build.ts) builds the names of `active`, `slots` and `waiting`
  // from the prefix and the build record's client: keep the three in step with it.
  /** Sorted set: the client's builds queued or running (id → admitted at, ms); api/quota.ts. */
  clientActive(client: string): string {
    return `${this.prefix}:client:${client}:active`;
  }
  /** Hash: the client's builds running now (id → "QUEUE TOKEN" of the attempt); client-slots.ts. */
  clientSlots(client: string): string {
    return `${this.prefix}:client:${client}:slots`;
  }
  /** Sorted set: the client's builds waiting for a slot (id → submitted at, ms), oldest woken first. */
  clientWaiting(client: string): string {
    return `${this.prefix}:client:${client}:waiting`;
  }
  /** Sorted set: the client's submits in the last minute (the rate window); api/quota.ts. */
  clientSubmits(client: string): string {
    return `${this.prefix}:client:${client}:submits`;
  }
  get allBuilds(): string {
    return `${this.prefix}:builds`;
  }
  /** Full step logs of a build: hash vertex → JSON StepLogRef (see worker/step-logs.ts). */
  logs(id: string): string {
    return `${this.prefix}:logs:${id}`;
  }
  /** Sorted set digest → last use (epoch ms) of a registry store's blobs of one kind (see store/use-index.ts). */
  storeUse(kind: 'context' | 'log'): string {
    return `${this.prefix}:store:${kind}:used`;
  }
  /** Last worker that built a project (cache locality). */
  project(name: string): string {
    return `${this.prefix}:project:${name}`;
  }
  get workers(): string {
    return `${this.prefix}:workers`;
  }
  workerAlive(id: string): string {
    return `${this.prefix}:worker:${id}:alive`;
  }
  /** Set (NX) by the live worker that noticed this worker's heartbeat expire: its loss is logged once. */
  workerLost(id: string): string {
    return `${this.prefix}:worker:${id}:lost`;
  }
  /** Hash state → builds of the whole service that ended in it; FINISH_LUA (finish-build.ts) counts each build once. */
  get buildTotals(): string {
    return `${this.prefix}:stats:builds`;
  }
  /** Hash reason → builds ended (FINISH_LUA) or refused at submit by a limit or quota (LIMITED_REASONS). */
  get limitedTotals(): string {
    return `${this.prefix}:stats:limited`;
  }
  /** Counter: builds that waited for their client's concurrency quota, each counted once. */
  get quotaWaitTotal(): string {
    return `${this.prefix}:stats:quota-waits`;
  }
  adoptLock(id: string): string {
    return `${this.prefix}:worker:${id}:adopt`;
  }
  get cancelChannel(): string {
    return `${this.prefix}:cancel`;
  }
  get controlChannel(): string {
    return `${this.prefix}:control`;
  }
  /** BullMQ's lock key of a job (its value is the owner's token). */
  jobLock(queue: string, jobId: string): string {
    return `${this.bullPrefix}:${queue}:${jobId}:lock`;
  }
}
