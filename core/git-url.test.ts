import { describe, expect, it } from 'vitest';
import { isCommitId, isGitUrl, parseGitUrl } from './git-url.js';

describe('isGitUrl (BuildKit: which sources are git)', () => {
  it.each([
    ['https://github.com/moby/buildkit.git', true],
    ['https://github.com/moby/buildkit.git#v0.10.1:docs', true],
    ['http://127.0.0.1:8080/r.git?ref=v1', true],
    ['git://host/repo', true],
    ['ssh://git@host:2222/org/repo', true],
    ['git@github.com:moby/buildkit.git', true],
    ['git@github.com:moby/buildkit.git#main:sub', true],
    ['https://example.com/file.tar.gz', false],
    ['https://example.com/repo.git/file', false],
    ['ftp://host/repo.git', false],
    ['./repo.git', false],
    ['repo', false],
  ])('%s → %s', (text, want) => {
    expect(isGitUrl(text)).toBe(want);
  });
});

describe('parseGitUrl', () => {
  it.each([
    ['https://h/o/r.git', { remote: 'https://h/o/r.git', scheme: 'https', host: 'h' }],
    ['https://h/o/r.git#v1', { remote: 'https://h/o/r.git', scheme: 'https', host: 'h', ref: 'v1' }],
    ['https://h/o/r.git#v1:docs/sub/', { remote: 'https://h/o/r.git', scheme: 'https', host: 'h', ref: 'v1', subdir: 'docs/sub' }],
    ['https://h/o/r.git#:sub', { remote: 'https://h/o/r.git', scheme: 'https', host: 'h', subdir: 'sub' }],
    ['https://h/o/r.git#main:../../etc', { remote: 'https://h/o/r.git', scheme: 'https', host: 'h', ref: 'main', subdir: 'etc' }],
    ['http://127.0.0.1:9418/r.git?ref=v2&subdir=a', { remote: 'http://127.0.0.1:9418/r.git', scheme: 'http', host: '127.0.0.1', port: 9418, ref: 'v2', subdir: 'a' }],
    ['https://h/r.git?tag=v3', { remote: 'https://h/r.git', scheme: 'https', host: 'h', ref: 'refs/tags/v3' }],
    ['https://h/r.git?branch=dev&keep-git-dir=true', { remote: 'https://h/r.git', scheme: 'https', host: 'h', ref: 'refs/heads/dev', keepGitDir: true }],
    ['https://h/r.git?checksum=ABCDEF0', { remote: 'https://h/r.git', scheme: 'https', host: 'h', checksum: 'abcdef0' }],
    ['https://[::1]:8443/r.git', { remote: 'https://[::1]:8443/r.git', scheme: 'https', host: '::1', port: 8443 }],
    ['git://h/r#v1', { remote: 'git://h/r', scheme: 'git', host: 'h', ref: 'v1' }],
    ['ssh://git@h:2222/o/r.git#main', { remote: 'ssh://git@h:2222/o/r.git', scheme: 'ssh', host: 'h', port: 2222, ref: 'main' }],
    ['git@github.com:o/r.git#main:sub', { remote: 'git@github.com:o/r.git', scheme: 'ssh', host: 'github.com', ref: 'main', subdir: 'sub' }],
  ])('%s', (text, want) => {
    expect(parseGitUrl(text)).toEqual(want);
  });

  it.each([
    ['https://user:tok@h/r.git', /credentials in a git URL are refused/],
    ['https://tok@h/r.git', /credentials/],
    ['ssh://git:pw@h/r.git', /credentials/],
    ['https://h/r', /must end in \.git/],
    ['ftp://h/r.git', /not a git transport/],
    ['https://h/r.git#-upload-pack=x', /invalid ref/],
    ['https://h/r.git#v1?ref=v2', /invalid ref/],
    ['https://h/r.git?ref=a&ref=b', /more than one value/],
    ['https://h/r.git?tag=a&branch=b', /branch conflicts with tag/],
    ['https://h/r.git?checksum=xyz', /want a commit id/],
    ['https://h/r.git?depth=1', /unexpected query "depth"/],
    ['not a url', /not a git URL/],
  ])('refuses %s', (text, why) => {
    expect(() => parseGitUrl(text)).toThrow(why);
  });

  it('never echoes a password in its error', () => {
    expect(() => parseGitUrl('https://me:hunter2@h/r.git')).toThrow(/^(?!.*hunter2)/s);
  });

  it('a ref from the fragment that conflicts with the query is refused', () => {
    expect(() => parseGitUrl('https://h/r.git?ref=b#a')).toThrow(/ref conflicts/);
  });
});

describe('isCommitId', () => {
  it.each([
    ['a'.repeat(40), true],
    ['0123456789abcdef0123456789abcdef01234567', true],
    ['a'.repeat(64), true],
    ['A'.repeat(40), false],
    ['a'.repeat(39), false],
    ['main', false],
  ])('%s', (ref, want) => expect(isCommitId(ref)).toBe(want));
});
