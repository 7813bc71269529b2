import { describe, expect, it } from 'vitest';
import { pickHead, pickRef } from './git-refs.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = 'c'.repeat(40);

describe('pickRef (BuildKit: a full ref, else a branch, else a tag, peeled)', () => {
  it.each([
    ['v1 as a tag', `${A}\trefs/tags/v1\n`, 'v1', { sha: A, ref: 'refs/tags/v1' }],
    ['an annotated tag is peeled', `${A}\trefs/tags/v1\n${B}\trefs/tags/v1^{}\n`, 'v1', { sha: A, ref: 'refs/tags/v1', peeled: B }],
    ['a branch wins over a tag of the same name', `${A}\trefs/heads/x\n${B}\trefs/tags/x\n`, 'x', { sha: A, ref: 'refs/heads/x' }],
    ['a full ref', `${A}\trefs/heads/main\n${C}\trefs/pull/1/head\n`, 'refs/pull/1/head', { sha: C, ref: 'refs/pull/1/head' }],
    ['refs/tags/ prefix', `${A}\trefs/tags/v2\n`, 'refs/tags/v2', { sha: A, ref: 'refs/tags/v2' }],
    ['a suffix match of another ref is not it', `${A}\trefs/heads/feature/v1\n`, 'v1', undefined],
    ['garbage lines', `not a sha\trefs/tags/v1\n`, 'v1', undefined],
  ])('%s', (_what, out, ref, want) => {
    expect(pickRef(out, ref)).toEqual(want);
  });
});

describe('pickHead', () => {
  it('the branch HEAD names and its commit', () => {
    expect(pickHead(`ref: refs/heads/trunk\tHEAD\n${A}\tHEAD\n`)).toEqual({ sha: A, ref: 'refs/heads/trunk' });
  });
  it('a detached HEAD', () => {
    expect(pickHead(`${A}\tHEAD\n`)).toEqual({ sha: A, ref: 'HEAD' });
  });
  it('an empty repository', () => {
    expect(pickHead('')).toBeUndefined();
  });
});
