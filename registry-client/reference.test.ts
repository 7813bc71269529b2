import { describe, expect, it } from 'vitest';
import { isLoopbackRegistry, manifestIdentifier, parseReference, registryHost } from './reference.js';

describe('registry side of references', () => {
  it('locates the API and picks the manifest identifier', () => {
    expect(registryHost('docker.io')).toBe('registry-1.docker.io');
    expect(registryHost('127.0.0.1:5000')).toBe('127.0.0.1:5000');
    expect(manifestIdentifier(parseReference('busybox'))).toBe('latest');
    expect(manifestIdentifier(parseReference(`busybox:1@sha256:${'a'.repeat(64)}`))).toBe(`sha256:${'a'.repeat(64)}`);
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
