import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, uniqueName, type TestRedis } from '../test/helpers/redis.js';
import { EVENT_FIELD, seqOfStreamId } from './event-stream.js';
import { EVENT_WRITER_DEFAULTS, EventWriter } from './events.js';
import { finishBuild } from './finish-build.js';
import { Keys } from './redis-keys.js';

/**
 * Both scripts that append to a build's stream (an event, the terminal event)
 * take their seq from the one NEXT_SEQ_LUA fragment, on a real Redis: the
 * wanted seq when the stream ends below it, else one past its last entry.
 */
describe('the next free seq of a build stream (real Redis)', () => {
  let server: TestRedis;
  let redis: Redis;

  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url, { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  async function seqs(keys: Keys, id: string): Promise<number[]> {
    return (await redis.xrange(keys.events(id), '-', '+')).map(([entry]) => seqOfStreamId(entry));
  }

  it('an event wanted at or below the last entry goes right after it; one wanted above keeps its seq', async () => {
    const keys = new Keys(uniqueName('seq'));
    // An earlier attempt's entries, which this writer has not seen (no begin()).
    await redis.xadd(keys.events('b1'), '5-0', EVENT_FIELD, '{"type":"warning","message":"earlier"}');
    const w = new EventWriter(redis, keys, 'b1', EVENT_WRITER_DEFAULTS);
    expect(await w.append({ type: 'warning', message: 'wants 1' })).toBe(true);
    expect(await w.append({ type: 'warning', message: 'wants 9', seq: 9 })).toBe(true);
    expect(await seqs(keys, 'b1')).toEqual([5, 6, 9]);
    expect(w.nextSeq).toBe(10);
  });

  it('the terminal event too: after the last entry when it wants less, at its seq when it wants more', async () => {
    const keys = new Keys(uniqueName('seq'));
    await redis.xadd(keys.events('b2'), '7-0', EVENT_FIELD, '{"type":"warning","message":"earlier"}');
    const body = { type: 'result' as const, result: {} };
    expect(await finishBuild(redis, keys, { buildId: 'b2', state: 'succeeded', body, seq: 3 })).toBe(8);

    await redis.xadd(keys.events('b3'), '2-0', EVENT_FIELD, '{"type":"warning","message":"earlier"}');
    expect(await finishBuild(redis, keys, { buildId: 'b3', state: 'succeeded', body, seq: 4 })).toBe(4);
    expect(await seqs(keys, 'b2')).toEqual([7, 8]);
    expect(await seqs(keys, 'b3')).toEqual([2, 4]);
  });

  it('an empty stream starts where the writer asks', async () => {
    const keys = new Keys(uniqueName('seq'));
    const w = new EventWriter(redis, keys, 'b4', EVENT_WRITER_DEFAULTS);
    await w.begin();
    expect(await w.append({ type: 'warning', message: 'first' })).toBe(true);
    expect(await seqs(keys, 'b4')).toEqual([1]);
  });
});
