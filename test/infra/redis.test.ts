import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { ping, startRedis, uniqueName, uniquePrefix } from '../helpers/redis.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('startRedis', () => {
  it('starts a server that answers PING and holds data, without persistence', async () => {
    await using redis = await startRedis();
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await client.connect();
      expect(await client.ping()).toBe('PONG');
      await client.set('k', 'v');
      expect(await client.get('k')).toBe('v');
      expect(await client.config('GET', 'save')).toEqual(['save', '']);
      expect(await client.config('GET', 'appendonly')).toEqual(['appendonly', 'no']);
      expect(await client.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
    } finally {
      client.disconnect();
    }
  });

  it('restart keeps the port, drops the data, and a client reconnects', async () => {
    await using redis = await startRedis();
    const client = new Redis(redis.url, { maxRetriesPerRequest: null, retryStrategy: () => 50 });
    try {
      await client.set('k', 'v');
      const before = redis.pid!;
      await redis.restart();
      expect(redis.pid).not.toBe(before);
      expect(alive(before)).toBe(false);
      expect(await ping(redis.port)).toBe('+PONG');
      // ioredis reconnects on its own: the command waits for it instead of failing.
      expect(await client.get('k')).toBeNull();
    } finally {
      client.disconnect();
    }
  });

  it('stop leaves no process and no port behind, and is idempotent', async () => {
    const redis = await startRedis();
    const pid = redis.pid!;
    expect(alive(pid)).toBe(true);
    await redis.stop();
    await redis.stop();
    expect(alive(pid)).toBe(false);
    expect(redis.pid).toBeUndefined();
    await expect(ping(redis.port)).rejects.toThrow(/ECONNREFUSED/);
    await expect(redis.restart()).rejects.toThrow(/after stop/);
  });

  it('two servers at once get different ports', async () => {
    await using a = await startRedis();
    await using b = await startRedis();
    expect(a.port).not.toBe(b.port);
    expect(await ping(a.port)).toBe('+PONG');
    expect(await ping(b.port)).toBe('+PONG');
  });

  it('unique names and prefixes do not repeat', () => {
    const names = new Set(Array.from({ length: 100 }, () => uniqueName('q')));
    expect(names.size).toBe(100);
    expect(uniquePrefix('bull')).toMatch(/^bl-bull-\d+-[0-9a-f]{8}:$/);
  });
});
