import { describe, expect, it } from 'vitest';
import { redactUrlCredentials } from './redact.js';

describe('redactUrlCredentials', () => {
  it.each([
    ['ADD https://user:tok3n@host/file /dst/', 'ADD https://***@host/file /dst/'],
    ['ADD http://tok3n@host:8080/f', 'ADD http://***@host:8080/f'],
    ['two: http://a:b@h1/x and https://c:d@h2/y', 'two: http://***@h1/x and https://***@h2/y'],
    ['a password with an at: https://u:p@ss@host/f', 'a password with an at: https://***@host/f'],
    ['HTTPS://U:P@HOST', 'HTTPS://***@HOST'],
    ['git+ssh://git:key@host/repo', 'git+ssh://***@host/repo'],
    // Nothing to hide: no user info, or an @ only after the host.
    ['https://example.com/a@b?x=c@d#e@f', 'https://example.com/a@b?x=c@d#e@f'],
    ['FROM busybox@sha256:abc', 'FROM busybox@sha256:abc'],
    ['RUN git clone git@github.com:o/r', 'RUN git clone git@github.com:o/r'],
  ])('%s', (input, want) => {
    expect(redactUrlCredentials(input)).toBe(want);
  });
});
