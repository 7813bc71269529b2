import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildRequest, CacheSpec } from '../../core/build.js';
import { Builder } from '../../builder/index.js';
import { pushBusyboxBase } from '../helpers/base-image.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { drive, unmountAll, writeTree } from '../helpers/build-driver.js';

/**
 * A real proxy in front of the registry that refuses manifests for `cache/*`
 * repositories the way a registry with a policy does: 400 with
 * distribution-spec error JSON.
 */
async function startRejectingProxy(upstream: string): Promise<{ host: string; stop(): Promise<void> }> {
  const up = new URL(upstream);
  const server = http.createServer((req, res) => {
    if (req.method === 'PUT' && /^\/v2\/cache\/.+\/manifests\//.test(req.url ?? '')) {
      req.resume();
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'MANIFEST_INVALID', message: 'artifacts are not allowed in this registry', detail: {} }] }));
      return;
    }
    const fwd = http.request({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    fwd.on('error', () => res.destroy());
    req.pipe(fwd);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    stop: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

describe('registry and local cache: a second, empty store reuses every step', () => {
  let registry: TestRegistry;
  let tmp: string;
  let ctx: string;
  let base: string;
  const builders: Builder[] = [];

  const open = async (name: string) => {
    const b = await Builder.open({ root: path.join(tmp, name), parallelism: 2 });
    builders.push(b);
    return b;
  };

  const DOCKERFILE = `ARG BASE
FROM \${BASE} AS build
RUN echo compiled > /artifact && sleep 0.2
FROM \${BASE}
COPY app/ /app/
RUN cat /app/main.txt > /out.txt
COPY --from=build /artifact /artifact
RUN echo final > /final.txt
`;

  const request = (extra: Partial<BuildRequest>, dockerfile = DOCKERFILE): BuildRequest => ({
    dockerfile,
    context: { dir: ctx },
    buildArgs: { BASE: base },
    ...extra,
  });

  const isRun = (name: string) => /\bRUN\b/.test(name);

  beforeAll(async () => {
    registry = await startRegistry();
    await pushBusyboxBase(registry.host);
    base = `${registry.host}/library/busybox:latest`;
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-rcache-'));
    ctx = path.join(tmp, 'ctx');
    await writeTree(ctx, { 'app/main.txt': 'hello\n' });
  });

  afterAll(async () => {
    await registry?.stop();
    if (tmp) {
      await unmountAll(tmp);
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it('store A exports with --cache-to type=registry; empty store B runs no RUN and downloads no layer', async () => {
    const cacheRef = `${registry.host}/cache/app:buildcache`;
    const a = await open('a');
    const first = await drive(a, request({ outputs: [{ type: 'registry', refs: [`${registry.host}/app:a`] }], cacheTo: [{ type: 'registry', ref: cacheRef, mode: 'max' }] }));
    expect(first.error).toBeUndefined();
    expect(first.ran.filter(isRun)).toHaveLength(3);

    const b = await open('b');
    const second = await drive(b, request({ outputs: [{ type: 'registry', refs: [`${registry.host}/app:b`] }], cacheFrom: [{ type: 'registry', ref: cacheRef }] }));
    expect(second.error).toBeUndefined();
    // No step started at all: no runc container, no pull, no COPY.
    expect(second.ran).toEqual([]);
    expect(second.cached.filter(isRun)).toHaveLength(3);
    expect(second.result!.imageDigest).toBe(first.result!.imageDigest);
    // The push mounted the layers from the cache repository: B holds only the config and manifest it wrote.
    const blobs = await readdir(path.join(tmp, 'b', 'content', 'blobs', 'sha256'));
    expect(blobs.sort()).toEqual([first.result!.configDigest!, first.result!.imageDigest].map((d) => d.slice('sha256:'.length)).sort());
    // Nothing was materialised either: a fully cached build makes no snapshot.
    expect(await readdir(path.join(tmp, 'b', 'snapshots', 'snapshots')).catch(() => [])).toEqual([]);
  });

  it('mode=min exports only the final chain; a step on top of an imported layer fetches it lazily', async () => {
    const dir = path.join(tmp, 'local-cache');
    const a = await open('c');
    const first = await drive(a, request({ cacheTo: [{ type: 'local', dir, mode: 'min' }] }));
    expect(first.error).toBeUndefined();
    expect(await readdir(dir)).toEqual(expect.arrayContaining(['index.json', 'oci-layout', 'blobs']));

    const d = await open('d');
    // The build stage's RUN is not in the final image, so min mode did not export it; the final chain hits.
    const same = await drive(d, request({ cacheFrom: [{ type: 'local', dir }] }));
    expect(same.error).toBeUndefined();
    expect(same.ran).toEqual([]);
    expect(same.result!.imageDigest).toBe(first.result!.imageDigest);

    // A new last step must run on top of the cached chain: its layers come from the cache dir.
    const grown = await drive(d, request({ cacheFrom: [{ type: 'local', dir }] }, `${DOCKERFILE}RUN cat /final.txt /out.txt /artifact > /all.txt\n`));
    expect(grown.error).toBeUndefined();
    expect(grown.ran.filter(isRun)).toEqual([expect.stringContaining('RUN cat /final.txt')]);
  });

  it('a registry that rejects the cache manifest: a clear error with its reason, or a warning with ignore-error=true', async () => {
    const proxy = await startRejectingProxy(registry.url);
    try {
      const spec: CacheSpec = { type: 'registry', ref: `${proxy.host}/cache/app:rejected` };
      const e = await open('e');
      const failed = await drive(e, request({ cacheTo: [spec] }));
      expect(failed.error).toMatch(/export cache .*cache\/app:rejected/);
      expect(failed.error).toContain('artifacts are not allowed in this registry');

      const ok = await drive(e, request({ cacheTo: [{ ...spec, ignoreError: true }] }));
      expect(ok.error).toBeUndefined();
      expect(ok.result?.imageDigest).toMatch(/^sha256:/);
      expect(ok.warnings.join('\n')).toContain('artifacts are not allowed in this registry');
    } finally {
      await proxy.stop();
    }
  });

  it('a --cache-from that does not exist yet is a warning, not a failure', async () => {
    const f = await open('f');
    const out = await drive(f, request({ cacheFrom: [{ type: 'registry', ref: `${registry.host}/cache/none:missing` }] }));
    expect(out.error).toBeUndefined();
    expect(out.warnings.join('\n')).toMatch(/--cache-from ignored/);
    expect(out.ran.filter(isRun)).toHaveLength(3);
  });
});
