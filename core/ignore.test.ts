import { describe, expect, it } from 'vitest';
import { InvalidPatternError, PathMatcher, globMatch, hasWildcards, parseIgnoreFile } from './ignore.js';

describe('parseIgnoreFile', () => {
  it.each<[string, string, string[]]>([
    ['comments and blanks', '# c\n\n*.key\n\n', ['*.key']],
    ['trims and cleans', '  docs/  \n./rel/../x\nsrc//a/', ['docs', 'x', 'src/a']],
    ['leading slash dropped', '/abs\n!/src/x.o', ['abs', '!src/x.o']],
    ['negation with spaces', '!  keep.txt', ['!keep.txt']],
    ['comment only at column 0', '  # not a comment', ['# not a comment']],
    ['CRLF', 'a\r\nb\r\n', ['a', 'b']],
    ['BOM on first line', '\ufeff*.log', ['*.log']],
    ['root alone stays', '/', ['/']],
    ['lone bang kept for the matcher to refuse', '!', ['!']],
    ['dot-dot at root clamps', '/../x', ['x']],
  ])('%s', (_name, text, want) => {
    expect(parseIgnoreFile(text)).toEqual(want);
  });
});

describe('PathMatcher.matches', () => {
  it.each<[string[], string, boolean]>([
    [['*'], 'foo', true],
    [['*'], 'foo/bar', true],
    [['*.go'], 'foo.go', true],
    [['*.go'], 'dir/foo.go', false],
    [['**/*.go'], 'dir/foo.go', true],
    [['**/*.go'], 'foo.go', true],
    [['**/*.go'], 'a/b/c/foo.go', true],
    [['**/*.go'], 'foo.goo', false],
    [['docs'], 'docs', true],
    [['docs'], 'docs/a.md', true],
    [['docs'], 'docsx', false],
    [['docs/'], 'docs/a.md', true],
    [['docs/*.md'], 'docs/a.md', true],
    [['docs/*.md'], 'docs/sub/a.md', false],
    [['a?c'], 'abc', true],
    [['a?c'], 'a/c', false],
    [['a?c'], 'abbc', false],
    [['[a-c].txt'], 'b.txt', true],
    [['[a-c].txt'], 'd.txt', false],
    [['[^a].txt'], 'a.txt', false],
    [['[^a].txt'], 'b.txt', true],
    [['foo/**'], 'foo', false],
    [['foo/**'], 'foo/bar', true],
    [['foo/**'], 'foo/bar/baz', true],
    [['**'], 'anything/at/all', true],
    [['a/**/b'], 'a/b', true],
    [['a/**/b'], 'a/x/y/b', true],
    [['a/**/b'], 'a/x/y/c', false],
    [['**/foo'], 'foo', true],
    [['**/foo'], 'x/foo', true],
    [['**/foo'], 'x/foo/bar', true],
    [['**/foo'], 'x/barfoo', false],
    [['foo*'], 'foo/bar', true],
    [['foo*'], 'foobar', true],
    [['a\\*b'], 'a*b', true],
    [['a\\*b'], 'axb', false],
    [['a.b'], 'axb', false],
    [['a+b'], 'a+b', true],
    [['(x)'], '(x)', true],
    [['/foo'], 'foo', true],
    [['foo'], './foo', true],
    [['foo'], '/foo/x', true],
    [['*.md', '!README.md'], 'README.md', false],
    [['*.md', '!README.md'], 'a.md', true],
    [['!README.md', '*.md'], 'README.md', true],
    [['logs', '!logs/keep.log'], 'logs/keep.log', false],
    [['logs', '!logs/keep.log'], 'logs/1.log', true],
    [['logs', '!logs/keep.log'], 'logs', true],
    [['**/*.o', '!src/gen/out.o'], 'src/gen/out.o', false],
    [['**/*.o', '!src/gen/out.o'], 'src/x.o', true],
    [['build', '!build'], 'build/x', false],
    [['a', '!a/b', 'a/b/c'], 'a/b/c', true],
    [['a', '!a/b', 'a/b/c'], 'a/b/d', false],
    [['*', '!keep'], 'keep/inner', false],
    [['*', '!keep'], 'other', true],
    [[], 'x', false],
    [['  spaced  '], 'spaced', true],
    [['x'], '', false],
  ])('%j matches %j → %s', (patterns, file, want) => {
    expect(new PathMatcher(patterns).matches(file)).toBe(want);
  });

  it('reproduces the dockerignore-negation conformance case', () => {
    const m = new PathMatcher(
      parseIgnoreFile('# comment lines are ignored\n*.key\ndocs/*.md\n!docs/README.md\n**/*.o\n!src/gen/out.o\nlogs\n!logs/keep.log\n'),
    );
    const files = [
      '.dockerignore',
      'docs/README.md',
      'docs/a.md',
      'keep.txt',
      'logs/1.log',
      'logs/keep.log',
      'secret.key',
      'src/gen/out.o',
      'src/main.c',
      'src/x.o',
    ];
    expect(files.filter((f) => !m.matches(f))).toEqual([
      '.dockerignore',
      'docs/README.md',
      'keep.txt',
      'logs/keep.log',
      'src/gen/out.o',
      'src/main.c',
    ]);
  });

  it.each([['!'], ['a\\'], ['[ab']])('refuses the bad pattern %j', (p) => {
    expect(() => new PathMatcher([p])).toThrow(InvalidPatternError);
  });
});

describe('PathMatcher.mayIncludeUnder', () => {
  it.each<[string[], string, boolean]>([
    [['logs'], 'logs', false],
    [['logs', '!logs/keep.log'], 'logs', true],
    [['node_modules', '!src'], 'node_modules', false],
    [['a', '!a/b/c'], 'a/b', true],
    [['a', '!a/b/c'], 'a/x', false],
    [['a', '!a'], 'a/x', true],
    [['build', '!**/keep'], 'build', true],
    [['build', '!*/keep'], 'build', true],
    [['build', '!*/keep'], 'build/sub', false],
    [['**/*.o', '!src/gen/out.o'], 'src', true],
    [['*.o'], 'src', true],
    [[], 'x', true],
    [['x'], '', true],
  ])('%j under %j → %s', (patterns, dir, want) => {
    expect(new PathMatcher(patterns).mayIncludeUnder(dir)).toBe(want);
  });
});

describe('globMatch (Go filepath.Match per segment)', () => {
  it.each<[string, string, boolean]>([
    ['*.txt', 'a.txt', true],
    ['*.txt', 'dir/a.txt', false],
    ['?.cfg', '1.cfg', true],
    ['?.cfg', '22.cfg', false],
    ['[ab].txt', 'a.txt', true],
    ['[ab].txt', 'c.txt', false],
    ['src/*/*.go', 'src/x/x.go', true],
    ['src/*/*.go', 'src/y/y.md', false],
    ['a**b', 'axyb', true],
    ['\\*', '*', true],
    ['\\*', 'x', false],
  ])('%j ~ %j → %s', (pattern, name, want) => {
    expect(globMatch(pattern, name)).toBe(want);
  });

  it.each<[string, boolean]>([
    ['plain', false],
    ['*.txt', true],
    ['a?', true],
    ['[ab]', true],
    ['a\\*', false],
  ])('hasWildcards(%j) → %s', (s, want) => {
    expect(hasWildcards(s)).toBe(want);
  });
});
