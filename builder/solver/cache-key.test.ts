/**
 * The scrub rules of cache-key.ts as a table: each field the key drops, with
 * the reason it may be dropped, and the fields next to them that change a
 * step's output and so must stay in the key.
 */
import { describe, expect, it } from 'vitest';
import { sha256, type Digest } from '../../core/digest.js';
import type { ExecDef, ExecMount, FileDef, VertexDef } from '../graph/index.js';
import { cacheKey, scrub } from './cache-key.js';

type CacheMount = Extract<ExecMount, { type: 'cache' }>;
type SecretMount = Extract<ExecMount, { type: 'secret' }>;
type CopyAction = Extract<FileDef['actions'][number], { op: 'copy' }>;

const CACHE_MOUNT: CacheMount = { type: 'cache', target: '/root/.cache', id: '/root/.cache', sharing: 'shared', mode: 0o755, uid: 0, gid: 0, readonly: false };
const SECRET_MOUNT: SecretMount = { type: 'secret', target: '/run/secrets/npm', id: 'npm', required: true, mode: 0o400, uid: 0, gid: 0 };

const RUN: ExecDef = {
  kind: 'exec',
  args: ['/bin/sh', '-c', 'make'],
  env: ['PATH=/usr/bin:/bin', 'CC=gcc'],
  cwd: '/src',
  user: { user: 'build' },
  network: 'default',
  mounts: [CACHE_MOUNT, SECRET_MOUNT],
  hasRoot: true,
};

const COPY_APP: CopyAction = { op: 'copy', src: 1, paths: ['app/'], dest: '/app/', excludes: [], add: false };
const COPY: FileDef = { kind: 'file', hasRoot: true, actions: [COPY_APP] };
const withCopy = (a: Partial<CopyAction>): FileDef => ({ ...COPY, actions: [{ ...COPY_APP, ...a }] });

const INPUTS = [sha256('base image key')];
const keyOf = (def: VertexDef, inputs: readonly Digest[] = INPUTS, content: readonly (Digest | null)[] = []) => cacheKey(def, inputs, content).key;
const withEnv = (env: readonly string[]): ExecDef => ({ ...RUN, env });
const withCacheMount = (m: Partial<CacheMount>): ExecDef => ({ ...RUN, mounts: [{ ...CACHE_MOUNT, ...m }, SECRET_MOUNT] });

describe('cache key scrub: dropped fields', () => {
  it.each([
    ...['HTTP_PROXY', 'HTTPS_PROXY', 'FTP_PROXY', 'NO_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'ftp_proxy', 'no_proxy', 'all_proxy'].map(
      (name) => [`exec env ${name}`, 'a proxy changes where bytes come from, not what they are (BuildKit drops it too)', withEnv([...RUN.env, `${name}=http://proxy.corp:3128`])] as const,
    ),
    ['the value of a proxy variable', 'another proxy fetches the same bytes', withEnv([...RUN.env, 'HTTPS_PROXY=http://other:8080'])],
    ['cache mount id', 'it names the storage; a cache mount holds no part of the output', withCacheMount({ id: 'go-build-cache' })],
    ['cache mount sharing', 'it says how builds share the storage, not what the step writes to its layer', withCacheMount({ sharing: 'locked' })],
  ] as const)('%s (%s)', (_field, _why, changed) => {
    expect(keyOf(changed)).toBe(keyOf(RUN));
  });

  it('drops exactly those: the scrubbed def keeps every other field of the RUN', () => {
    expect(scrub(withEnv([...RUN.env, 'HTTP_PROXY=x']))).toEqual({ ...RUN, mounts: [{ type: 'cache', target: '/root/.cache', mode: 0o755, uid: 0, gid: 0, readonly: false }, SECRET_MOUNT] });
  });
});

describe('cache key scrub: fields that change the output stay in the key', () => {
  it.each([
    ['a non-proxy env variable', withEnv(['PATH=/usr/bin:/bin', 'CC=clang'])],
    ['an env variable whose name only contains PROXY', withEnv([...RUN.env, 'PROXY_PORT=3128'])],
    ['an env variable named like a proxy, in another case', withEnv([...RUN.env, 'Http_Proxy=http://proxy.corp:3128'])],
    ['the command', { ...RUN, args: ['/bin/sh', '-c', 'make test'] }],
    ['the working directory', { ...RUN, cwd: '/build' }],
    ['the user', { ...RUN, user: { user: 'build', group: 'staff' } }],
    ['the network mode', { ...RUN, network: 'host' }],
    ['building on scratch', { ...RUN, hasRoot: false }],
    ['the cache mount target', withCacheMount({ target: '/var/cache' })],
    ['the cache mount mode', withCacheMount({ mode: 0o700 })],
    ['the cache mount owner', withCacheMount({ uid: 1000 })],
    ['a read-only cache mount', withCacheMount({ readonly: true })],
    ['the secret mount target', { ...RUN, mounts: [CACHE_MOUNT, { ...SECRET_MOUNT, target: '/run/secrets/other' }] }],
    ['the secret id', { ...RUN, mounts: [CACHE_MOUNT, { ...SECRET_MOUNT, id: 'pypi' }] }],
    ['a tmpfs mount', { ...RUN, mounts: [...RUN.mounts, { type: 'tmpfs', target: '/tmp' }] }],
  ] as const satisfies ReadonlyArray<readonly [string, ExecDef]>)('RUN: %s', (_field, changed) => {
    expect(keyOf(changed)).not.toBe(keyOf(RUN));
  });

  it.each([
    ['the destination', withCopy({ dest: '/srv/' })],
    ['--chmod', withCopy({ chmod: '755' })],
    ['--chown', withCopy({ chown: { user: '1000' } })],
    ['the source paths', withCopy({ paths: ['app/', 'lib/'] })],
  ] as const satisfies ReadonlyArray<readonly [string, FileDef]>)('COPY: %s', (_field, changed) => {
    expect(keyOf(changed)).not.toBe(keyOf(COPY));
  });

  it('the input keys and the content of the files a COPY reads', () => {
    const content = [sha256('app/ as it is now')];
    expect(keyOf(COPY, [sha256('another base')], content)).not.toBe(keyOf(COPY, INPUTS, content));
    expect(keyOf(COPY, INPUTS, [sha256('app/ after an edit')])).not.toBe(keyOf(COPY, INPUTS, content));
  });

  it('the kind: an image source keeps its whole definition', () => {
    const image: VertexDef = { kind: 'image', ref: 'docker.io/library/busybox@sha256:' + 'a'.repeat(64), platform: { os: 'linux', architecture: 'amd64' } };
    expect(scrub(image)).toEqual(image);
    expect(keyOf({ ...image, platform: { os: 'linux', architecture: 'arm64' } }, [])).not.toBe(keyOf(image, []));
  });
});
