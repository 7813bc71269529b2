import { status } from '@grpc/grpc-js';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildliteClient } from '../../api/index.js';
import { loadServices } from '../../api/proto.js';
import type { BuildliteError } from '../../core/errors.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startService, TOKENS, type Service } from '../helpers/service.js';
import { emptyTar } from '../helpers/tar.js';

/** Calls Submit with a raw request and returns the gRPC status code it fails with. */
function rawSubmitStatus(addr: string, token: string | undefined, request: Record<string, unknown>): Promise<number> {
  const { builds } = loadServices();
  const c = new builds(addr, grpc.credentials.createInsecure()) as grpc.Client & Record<string, (...a: unknown[]) => unknown>;
  const md = new grpc.Metadata();
  if (token !== undefined) md.set('authorization', `Bearer ${token}`);
  return new Promise((resolve) => {
    const call = c['Submit']!(md, (err: grpc.ServiceError | null) => {
      c.close();
      resolve(err ? err.code : status.OK);
    }) as grpc.ClientWritableStream<unknown>;
    call.on('error', () => undefined);
    call.write({ request });
    call.end();
  });
}

describe('build service API: auth, validation, limits (real gRPC over TCP, real Redis)', () => {
  let redis: TestRedis;
  let svc: Service;

  beforeAll(async () => {
    redis = await startRedis();
    svc = await startService({ redisUrl: redis.url, workers: 0 });
  });
  afterAll(async () => {
    await svc?.stop();
    await redis?.stop();
  });

  it('refuses a call without a token and with a wrong token (UNAUTHENTICATED)', async () => {
    const req = { dockerfile: 'FROM scratch\n' };
    expect(await rawSubmitStatus(svc.addr, undefined, req)).toBe(status.UNAUTHENTICATED);
    expect(await rawSubmitStatus(svc.addr, 'not-a-valid-token-at-all', req)).toBe(status.UNAUTHENTICATED);
    const anon = new BuildliteClient(svc.addr, undefined);
    await expect(anon.list()).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    anon.close();
  });

  it('refuses a 10 MiB Dockerfile (RESOURCE_EXHAUSTED at the message limit) and a 2 MiB one (our limit)', async () => {
    const big = `FROM scratch\n# ${'x'.repeat(10 << 20)}\n`;
    expect(await rawSubmitStatus(svc.addr, TOKENS.alice, { dockerfile: big })).toBe(status.RESOURCE_EXHAUSTED);
    const mid = `FROM scratch\n# ${'x'.repeat(2 << 20)}\n`;
    expect(await rawSubmitStatus(svc.addr, TOKENS.alice, { dockerfile: mid })).toBe(status.RESOURCE_EXHAUSTED);
  });

  it.each([
    ['an empty Dockerfile', { dockerfile: '  ' }, status.INVALID_ARGUMENT],
    ['a bad build-arg name', { dockerfile: 'FROM scratch', build_args: [{ key: 'A B', value: '1' }] }, status.INVALID_ARGUMENT],
    ['a host-path output', { dockerfile: 'FROM scratch', outputs: [{ type: 'local', refs: ['/etc'] }] }, status.INVALID_ARGUMENT],
    ['an unknown network', { dockerfile: 'FROM scratch', network: 'bridge' }, status.INVALID_ARGUMENT],
    ['network=host without a grant', { dockerfile: 'FROM scratch', network: 'host', allow: ['network.host'] }, status.PERMISSION_DENIED],
    ['security.insecure without a grant', { dockerfile: 'FROM scratch', allow: ['security.insecure'] }, status.PERMISSION_DENIED],
    ['an unknown entitlement', { dockerfile: 'FROM scratch', allow: ['device'] }, status.INVALID_ARGUMENT],
    ['a malformed context digest', { dockerfile: 'FROM scratch', context_digest: 'sha256:zz' }, status.INVALID_ARGUMENT],
    ['an unknown context digest', { dockerfile: 'FROM scratch', context_digest: `sha256:${'0'.repeat(64)}` }, status.NOT_FOUND],
    ['a platform that is not Linux', { dockerfile: 'FROM scratch', platform: { os: 'windows', architecture: 'amd64' } }, status.INVALID_ARGUMENT],
    ['an unknown architecture in platforms', { dockerfile: 'FROM scratch', platforms: [{ os: 'linux', architecture: 'amd64', variant: '' }, { os: 'linux', architecture: 'sparc', variant: '' }] }, status.INVALID_ARGUMENT],
    ['a platform without an architecture', { dockerfile: 'FROM scratch', platforms: [{ os: 'linux', architecture: '', variant: '' }] }, status.INVALID_ARGUMENT],
    ['secrets without an embedded worker', { dockerfile: 'FROM scratch', secrets: [{ id: 's', value: Buffer.from('v') }] }, status.INVALID_ARGUMENT],
  ])('refuses %s', async (_name, req, code) => {
    expect(await rawSubmitStatus(svc.addr, TOKENS.alice, req)).toBe(code);
  });

  it('answers the standard health check without a token', async () => {
    const c = new BuildliteClient(svc.addr, undefined);
    expect(await c.healthCheck()).toBe('SERVING');
    c.close();
  });

  it('keeps builds private to their client; an admin sees all; ids of others look missing', async () => {
    const alice = new BuildliteClient(svc.addr, TOKENS.alice);
    const bob = new BuildliteClient(svc.addr, TOKENS.bob);
    const admin = new BuildliteClient(svc.addr, TOKENS.admin);
    try {
      // No worker runs in this suite: the builds stay queued, which is all this test needs.
      const a = await alice.submit({ dockerfile: 'FROM scratch\n' }, emptyTar());
      expect(await alice.hasContext(a.contextDigest)).toBe(true);
      const again = await alice.submit({ dockerfile: 'FROM scratch\n', context_digest: a.contextDigest });
      expect((await alice.get(again.buildId)).state).toBe('queued');
      await expect(bob.get(a.buildId)).rejects.toMatchObject({ code: 'NOT_FOUND' } satisfies Partial<BuildliteError>);
      await expect(bob.cancel(a.buildId)).rejects.toMatchObject({ code: 'NOT_FOUND' });
      expect((await bob.list()).map((b) => b.buildId)).not.toContain(a.buildId);
      await expect(bob.list({ client: 'alice' })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
      expect((await admin.list({ client: 'alice' })).map((b) => b.buildId)).toEqual(expect.arrayContaining([a.buildId, again.buildId]));
      await expect(alice.prune()).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });

      // Cancelling a queued build ends it at once, and its watcher sees the end.
      const info = await alice.cancel(a.buildId);
      expect(info.state).toBe('cancelled');
      const events = [];
      for await (const ev of alice.watch(a.buildId, 0)) events.push(ev);
      expect(events.at(-1)).toMatchObject({ type: 'error', error: { code: 'CANCELLED' } });
      await alice.cancel(again.buildId);
    } finally {
      alice.close();
      bob.close();
      admin.close();
    }
  });

  it('survives garbage on a Watch and a wrong first Submit message', async () => {
    const alice = new BuildliteClient(svc.addr, TOKENS.alice);
    try {
      const it1 = alice.watch('../../etc/passwd', 0);
      await expect(it1.next()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      const { builds } = loadServices();
      const c = new builds(svc.addr, grpc.credentials.createInsecure()) as grpc.Client & Record<string, (...a: unknown[]) => unknown>;
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${TOKENS.alice}`);
      const code = await new Promise<number>((resolve) => {
        const call = c['Submit']!(md, (err: grpc.ServiceError | null) => resolve(err ? err.code : 0)) as grpc.ClientWritableStream<unknown>;
        call.write({ chunk: Buffer.from('not a request') });
        call.end();
      });
      c.close();
      expect(code).toBe(status.INVALID_ARGUMENT);
      expect(await alice.healthCheck()).toBe('SERVING');
    } finally {
      alice.close();
    }
  });
});
