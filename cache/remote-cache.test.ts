import { describe, expect, it } from 'vitest';
import { sha256 } from '../core/digest.js';
import type { ImageManifest } from '../core/oci.js';
import { buildCacheManifest, CACHE_INDEX_MEDIA_TYPE, parseCacheIndex } from './remote-cache.js';
import { diff } from './why-miss.js';

const d = (s: string) => sha256(Buffer.from(s));
const layer = (s: string, size = 10) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d(s), size, diffId: d(`diff-${s}`) });

describe('cache index format', () => {
  it('round-trips records through the manifest and index, layers deduplicated', () => {
    const records = [
      { key: d('k1'), layers: [layer('a')], createdAt: 5 },
      { key: d('k2'), layers: [layer('a'), layer('b')] },
    ];
    const built = buildCacheManifest(records);
    expect(built.layers.map((l) => l.digest)).toEqual([d('a'), d('b')]);
    const manifest = JSON.parse(built.manifest.toString()) as ImageManifest;
    expect(manifest.config).toEqual({ mediaType: CACHE_INDEX_MEDIA_TYPE, digest: sha256(built.index), size: built.index.length });
    const parsed = parseCacheIndex(built.index, manifest, 'test');
    expect(parsed.get(d('k1'))).toEqual({ layers: [layer('a')], createdAt: 5 });
    expect(parsed.get(d('k2'))?.layers).toEqual([layer('a'), layer('b')]);
  });

  it('drops records whose layers the manifest does not carry (or carries with another size) and malformed keys', () => {
    const built = buildCacheManifest([{ key: d('k1'), layers: [layer('a')] }]);
    const manifest = JSON.parse(built.manifest.toString()) as ImageManifest;
    const index = Buffer.from(JSON.stringify({
      version: 1,
      records: [
        { key: d('ok'), layers: [layer('a')] },
        { key: d('other-blob'), layers: [layer('zzz')] },
        { key: d('wrong-size'), layers: [layer('a', 11)] },
        { key: 'sha256:nothex', layers: [layer('a')] },
        { key: d('bad-layer'), layers: [{ digest: '../../etc/passwd', size: 10 }] },
      ],
    }));
    expect([...parseCacheIndex(index, manifest, 'test').keys()]).toEqual([d('ok')]);
    expect(() => parseCacheIndex(Buffer.from('{"version":2,"records":[]}'), manifest, 'test')).toThrow(/not a buildlite cache index/);
  });
});

describe('why-miss diff', () => {
  it('names exactly the leaves that differ', () => {
    const a = { def: { env: ['A=1', 'PATH=/bin'], args: ['sh'] }, inputs: [d('x')], content: [null] };
    const b = { def: { env: ['A=2', 'PATH=/bin'], args: ['sh'] }, inputs: [d('x')], content: [null] };
    expect(diff(a, b, '')).toEqual([{ path: 'def.env[0]', was: 'A=1', now: 'A=2' }]);
    expect(diff(a, a, '')).toEqual([]);
  });
});
