import { describe, expect, it } from 'vitest';
import { mergeScopes, parseWwwAuthenticate } from './auth.js';
import { RegistryClient } from './client.js';
import { InvalidOptionError, parseDiagnostics, redactUrl, RegistryError } from './errors.js';
import { backoffMs } from '../core/backoff.js';

describe('parseWwwAuthenticate', () => {
  it.each([
    ['Basic realm="Registry Realm"', [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]],
    [
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
      [{ scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' } }],
    ],
    [
      'Bearer realm="http://x/t",error="insufficient_scope",scope="repository:a:pull,push"',
      [{ scheme: 'bearer', params: { realm: 'http://x/t', error: 'insufficient_scope', scope: 'repository:a:pull,push' } }],
    ],
    ['Bearer realm=unquoted, service="s"', [{ scheme: 'bearer', params: { realm: 'unquoted', service: 's' } }]],
    ['Basic realm="a", Bearer realm="b"', [{ scheme: 'basic', params: { realm: 'a' } }, { scheme: 'bearer', params: { realm: 'b' } }]],
    ['Bearer realm="with \\"quote\\""', [{ scheme: 'bearer', params: { realm: 'with "quote"' } }]],
    ['', []],
  ])('%s', (header, want) => {
    expect(parseWwwAuthenticate(header)).toEqual(want);
  });
});

describe('scopes, redaction, backoff, options', () => {
  it('merges scopes per resource', () => {
    expect(mergeScopes(['repository:a:pull', 'repository:a:push', 'repository:b:pull', 'repository:a:pull'])).toEqual([
      'repository:a:pull,push',
      'repository:b:pull',
    ]);
  });

  it('redacts user info and query values from URLs', () => {
    expect(redactUrl('https://u:p@r.example/v2/x/blobs/uploads/1?_state=abc&digest=sha256:1')).toBe(
      'https://r.example/v2/x/blobs/uploads/1?_state=REDACTED&digest=REDACTED',
    );
    expect(redactUrl('not a url')).toBe('<unparseable URL>');
  });

  it('parses distribution errors, scrubbing secrets and control characters', () => {
    const body = JSON.stringify({ errors: [{ code: 'DENIED', message: 'token s3cr3t-token rejected\u001b[31m', detail: { x: 1 } }] });
    const d = parseDiagnostics(body, ['s3cr3t-token']);
    expect(d).toEqual([{ code: 'DENIED', message: 'token *** rejected [31m ({"x":1})' }]);
    expect(parseDiagnostics('<html>oops</html>', [])).toEqual([{ code: 'UNKNOWN', message: '<html>oops</html>' }]);
  });

  it('maps statuses to codes and retryability', () => {
    const mk = (status: number) => RegistryError.fromResponse({ status, method: 'GET', url: 'http://x/v2/' });
    expect([mk(401).code, mk(403).code, mk(404).code, mk(500).code]).toEqual(['UNAUTHENTICATED', 'PERMISSION_DENIED', 'REGISTRY', 'REGISTRY']);
    expect([408, 429, 500, 502, 503, 504].map((s) => mk(s).retryable)).toEqual([true, true, true, true, true, true]);
    expect([400, 401, 403, 404, 501].map((s) => mk(s).retryable)).toEqual([false, false, false, false, false]);
  });

  it('backs off with jitter, honours Retry-After up to the cap', () => {
    expect(backoffMs(0, '2', 30_000)).toBe(2000);
    expect(backoffMs(0, '3600', 30_000)).toBe(30_000);
    for (let i = 0; i < 20; i++) {
      const ms = backoffMs(3, undefined, 30_000);
      expect(ms).toBeGreaterThanOrEqual(800);
      expect(ms).toBeLessThanOrEqual(1600);
    }
  });

  it.each([
    [{ concurrency: 0 }, 'concurrency'],
    [{ concurrency: 1.5 }, 'concurrency'],
    [{ retries: -1 }, 'retries'],
    [{ caFile: '/nonexistent/ca.pem' }, 'caFile'],
    [{ insecureRegistries: ['http://x'] }, 'insecureRegistries'],
    [{ userAgent: 'a\nb' }, 'userAgent'],
  ])('rejects bad options %j', (opts, name) => {
    try {
      new RegistryClient(opts);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidOptionError);
      expect((err as InvalidOptionError).option).toBe(name);
      expect((err as InvalidOptionError).code).toBe('INVALID_OPTION');
    }
  });
});
