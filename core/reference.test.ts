import { describe, expect, it } from 'vitest';
import { familiarReference, formatReference, hasCredentials, parseReference, redactReference } from './reference.js';

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

  it('formats and shortens', () => {
    expect(formatReference(parseReference('busybox'))).toBe('docker.io/library/busybox:latest');
    expect(familiarReference(parseReference('docker.io/library/busybox:1'))).toBe('busybox:1');
    expect(familiarReference(parseReference('localhost:5000/x'))).toBe('localhost:5000/x:latest');
  });
});

describe('references with credentials', () => {
  // Every way a login can end up in a reference; the secret must never come back in the error.
  it.each([
    ['user:PASSWORD-1@host.example.com/x:1', 'host.example.com'],
    ['user:PASSWORD-1@127.0.0.1:5000/x:1', '127.0.0.1:5000'],
    ['PASSWORD-1@registry.example.com/app', 'registry.example.com'],
    ['user:PASSWORD-1@host', 'host'],
    ['user:pa/PASSWORD-1@host/x', 'host'],
    ['user:p@PASSWORD-1@host/x:1', 'host'],
    ['https://user:PASSWORD-1@host/x:1', 'host'],
    [`user:PASSWORD-1@host/x@${D}`, 'host'],
  ])('%s is refused, pointing at buildlite login, without the password', (input, host) => {
    expect(hasCredentials(input)).toBe(true);
    const err = (() => {
      try {
        parseReference(input);
      } catch (e) {
        return e as Error & { code: string };
      }
      return undefined;
    })();
    expect(err?.code).toBe('INVALID_ARGUMENT');
    expect(err?.message).toContain('carries credentials');
    expect(err?.message).toContain(`buildlite login ${host}`);
    expect(err?.message).not.toContain('PASSWORD-1');
  });

  it.each([
    [`busybox@${D}`, `busybox@${D}`],
    ['host:5000/x:1', 'host:5000/x:1'],
    ['busybox@sha256:abc', '***@sha256:abc'],
    ['user:PASSWORD-1@host:5000', '***@host:5000'],
  ])('redactReference(%s) = %s', (input, want) => {
    expect(redactReference(input)).toBe(want);
  });

  it('a mistyped reference that only looks like a digest still shows no password', () => {
    expect(hasCredentials('user:PASSWORD-1@host:5000')).toBe(false);
    expect(() => parseReference('user:PASSWORD-1@host:5000')).toThrow(/digest/);
    expect(() => parseReference('user:PASSWORD-1@host:5000')).not.toThrow(/PASSWORD-1/);
    expect(hasCredentials(`busybox:1@${D}`)).toBe(false);
    expect(hasCredentials('busybox@sha256:abc')).toBe(false);
  });
});
