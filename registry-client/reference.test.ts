import { describe, expect, it } from 'vitest';
import { familiarReference, formatReference, isLoopbackRegistry, parseReference, registryHost } from './reference.js';

const D = `sha256:${'a'.repeat(64)}`;

describe('parseReference', () => {
  it.each([
    ['busybox', 'docker.io', 'library/busybox', 'latest', undefined],
    ['busybox:1.36', 'docker.io', 'library/busybox', '1.36', undefined],
    ['library/busybox', 'docker.io', 'library/busybox', 'latest', undefined],
    ['docker.io/busybox', 'docker.io', 'library/busybox', 'latest', undefined],
    ['index.docker.io/library/busybox:x', 'docker.io', 'library/busybox', 'x', undefined],
    ['user/app', 'docker.io', 'user/app', 'latest', undefined],
    ['user/app/sub:tag', 'docker.io', 'user/app/sub', 'tag', undefined],
    ['localhost/app', 'localhost', 'app', 'latest', undefined],
    ['localhost:5000/x', 'localhost:5000', 'x', 'latest', undefined],
    ['127.0.0.1:5002/conf/a:tag', '127.0.0.1:5002', 'conf/a', 'tag', undefined],
    ['ghcr.io/o/r:v1.2.3-rc_1', 'ghcr.io', 'o/r', 'v1.2.3-rc_1', undefined],
    ['[::1]:5000/app:1', '[::1]:5000', 'app', '1', undefined],
    [`busybox@${D}`, 'docker.io', 'library/busybox', undefined, D],
    [`busybox:1@${D}`, 'docker.io', 'library/busybox', '1', D],
    [`reg.example.com:443/a/b@${D}`, 'reg.example.com:443', 'a/b', undefined, D],
    ['a.b-c/d__e', 'a.b-c', 'd__e', 'latest', undefined],
    ['foo:5000', 'docker.io', 'library/foo', '5000', undefined],
    ['my-app_x.y', 'docker.io', 'library/my-app_x.y', 'latest', undefined],
    ['Registry.Example.com/app', 'Registry.Example.com', 'app', 'latest', undefined],
    ['a/b-----c', 'docker.io', 'a/b-----c', 'latest', undefined],
  ])('%s', (input, registry, repository, tag, digest) => {
    const r = parseReference(input);
    expect(r).toEqual({ registry, repository, ...(tag !== undefined ? { tag } : {}), ...(digest ? { digest } : {}) });
    expect(parseReference(formatReference(r))).toEqual(r);
  });

  it.each([
    ['', /empty/],
    ['Busybox', /lowercase/],
    ['busybox:', /invalid tag/],
    ['busybox:-x', /invalid tag/],
    ['busybox@sha256:abc', /digest/],
    ['busybox@md5:' + 'a'.repeat(32), /digest/],
    ['a//b', /path component/],
    ['a/b_', /path component/],
    ['a/_b', /path component/],
    ['host:99999/a', /registry/],
    ['exa mple.com/a', /path component|registry/],
    ['a.b_c/e', /invalid registry/],
    [':tag', /missing repository/],
    ['a'.repeat(64), /ambiguous/],
    ['x/' + 'a'.repeat(300), /longer than/],
    ['busybox:' + 't'.repeat(129), /invalid tag/],
  ])('rejects %j', (input, why) => {
    expect(() => parseReference(input)).toThrow(why);
    try {
      parseReference(input);
    } catch (err) {
      expect((err as { code: string }).code).toBe('INVALID_ARGUMENT');
    }
  });

  it('formats, shortens and locates', () => {
    expect(formatReference(parseReference('busybox'))).toBe('docker.io/library/busybox:latest');
    expect(familiarReference(parseReference('docker.io/library/busybox:1'))).toBe('busybox:1');
    expect(familiarReference(parseReference('localhost:5000/x'))).toBe('localhost:5000/x:latest');
    expect(registryHost('docker.io')).toBe('registry-1.docker.io');
    expect(registryHost('127.0.0.1:5000')).toBe('127.0.0.1:5000');
  });

  it.each([
    ['127.0.0.1:5000', true],
    ['127.1.2.3', true],
    ['localhost', true],
    ['localhost:80', true],
    ['[::1]:5000', true],
    ['128.0.0.1:5000', false],
    ['localhost.example.com', false],
    ['docker.io', false],
  ])('isLoopbackRegistry(%s) = %s', (r, want) => {
    expect(isLoopbackRegistry(r)).toBe(want);
  });
});
