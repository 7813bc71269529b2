import { describe, expect, it } from 'vitest';
import type { BuildDefinition, ExecDef, FileDef, GitSourceDef, NamedSource } from '../graph/index.js';
import { FakeResolver } from '../../test/dockerfile/fake-resolver.js';
import { convertDockerfile } from './convert.js';

/** The frontend's side of BuildKit's sources: RUN --mount=type=ssh and ADD <git url>. */

const B = 'FROM busybox\n';

function conv(dockerfile: string): Promise<BuildDefinition> {
  return convertDockerfile({ dockerfile, resolver: new FakeResolver() });
}

function rootAs<T>(def: BuildDefinition): T {
  return def.graph.get(def.root!).def as T;
}

describe('RUN --mount=type=ssh', () => {
  it.each([
    ['--mount=type=ssh', [{ type: 'ssh', target: '/run/buildkit/ssh_agent.0', id: 'default', required: false, mode: 0o600, uid: 0, gid: 0 }], '/run/buildkit/ssh_agent.0'],
    [
      '--mount=type=ssh,id=gh,required --mount=type=ssh,target=/agent,mode=0660,uid=1000,gid=50',
      [
        { type: 'ssh', target: '/run/buildkit/ssh_agent.0', id: 'gh', required: true, mode: 0o600, uid: 0, gid: 0 },
        { type: 'ssh', target: '/agent', id: 'default', required: false, mode: 0o660, uid: 1000, gid: 50 },
      ],
      '/run/buildkit/ssh_agent.0',
    ],
    ['--mount=type=ssh,dst=/s --mount=type=ssh', [{ type: 'ssh', target: '/s', id: 'default', required: false, mode: 0o600, uid: 0, gid: 0 }, { type: 'ssh', target: '/run/buildkit/ssh_agent.0', id: 'default', required: false, mode: 0o600, uid: 0, gid: 0 }], '/s'],
  ])('%s', async (flags, mounts, sock) => {
    const exec = rootAs<ExecDef>(await conv(`${B}RUN ${flags} ssh-add -l`));
    expect(exec.mounts).toEqual(mounts);
    expect(exec.env.filter((e) => e.startsWith('SSH_AUTH_SOCK='))).toEqual([`SSH_AUTH_SOCK=${sock}`]);
  });

  it('an SSH_AUTH_SOCK the image or ENV sets is kept', async () => {
    const exec = rootAs<ExecDef>(await conv(`${B}ENV SSH_AUTH_SOCK=/mine\nRUN --mount=type=ssh x`));
    expect(exec.env.filter((e) => e.startsWith('SSH_AUTH_SOCK='))).toEqual(['SSH_AUTH_SOCK=/mine']);
  });

  it('a RUN without ssh mounts gets no SSH_AUTH_SOCK', async () => {
    const exec = rootAs<ExecDef>(await conv(`${B}RUN x`));
    expect(exec.env.some((e) => e.startsWith('SSH_AUTH_SOCK='))).toBe(false);
  });
});

describe('ADD <git url>', () => {
  it('a git source vertex, its root copied into dest without unpacking archives', async () => {
    const def = await conv(`${B}ADD --keep-git-dir=true --checksum=ABCDEF12 https://example.com/o/r.git#v1 /src`);
    const file = rootAs<FileDef>(def);
    const copy = file.actions[0]!;
    expect(copy).toMatchObject({ op: 'copy', paths: ['/'], dest: '/src', add: false, literal: true });
    const root = def.graph.get(def.root!);
    const git = def.graph.get(root.inputs[copy.op === 'copy' ? copy.src : 0]!).def as GitSourceDef;
    expect(git).toEqual({ kind: 'git', remote: 'https://example.com/o/r.git', ref: 'v1', keepGitDir: true, checksum: 'abcdef12' });
    expect(def.history.at(-1)?.created_by).toBe('ADD https://example.com/o/r.git#v1 /src # buildkit');
  });

  it.each([
    ['git@github.com:o/r.git#main:sub', { kind: 'git', remote: 'git@github.com:o/r.git', ref: 'main', subdir: 'sub', keepGitDir: false }],
    ['ssh://git@h/o/r#dev', { kind: 'git', remote: 'ssh://git@h/o/r', ref: 'dev', keepGitDir: false }],
    ['git://h/r.git', { kind: 'git', remote: 'git://h/r.git', keepGitDir: false }],
  ])('%s', async (url, want) => {
    const def = await conv(`${B}ADD ${url} /src`);
    const git = [...def.graph.vertices.values()].find((v) => v.def.kind === 'git')?.def;
    expect(git).toEqual(want);
  });

  it('a kept .git is dropped with a subdir (BuildKit)', async () => {
    const def = await conv(`${B}ADD --keep-git-dir https://h/r.git#v1:docs /d`);
    const git = [...def.graph.vertices.values()].find((v) => v.def.kind === 'git')?.def as GitSourceDef;
    expect(git.keepGitDir).toBe(false);
  });

  it('checksums that disagree are refused', async () => {
    await expect(conv(`${B}ADD --checksum=abcd1234 https://h/r.git?checksum=1234abcd /d`)).rejects.toThrow(/checksum mismatch/);
  });

  it('an https URL that is not a repository stays a download', async () => {
    const def = await conv(`${B}ADD https://h/file.tar.gz /d/`);
    expect([...def.graph.vertices.values()].some((v) => v.def.kind === 'http')).toBe(true);
  });
});

describe('named contexts (--build-context), resolved before stages and images', () => {
  const local: NamedSource = { kind: 'local', name: 'named:src', excludes: ['*.tmp'] };
  const withNamed = (dockerfile: string, named: Record<string, NamedSource>, resolver = new FakeResolver()) =>
    convertDockerfile({ dockerfile, resolver, namedContexts: new Map(Object.entries(named)) });
  const inputsOf = (def: BuildDefinition) => def.graph.get(def.root!).inputs.map((d) => def.graph.get(d).def);

  it('COPY --from=NAME copies from the directory (a local source with its .dockerignore)', async () => {
    const def = await withNamed(`${B}COPY --from=src /a /a`, { src: local });
    expect(inputsOf(def)[1]).toEqual({ kind: 'local', name: 'named:src', excludes: ['*.tmp'] });
  });

  it('RUN --mount=from=NAME mounts it', async () => {
    const def = await withNamed(`${B}RUN --mount=from=src,target=/s cat /s/a`, { src: local });
    expect(inputsOf(def)[1]).toEqual({ kind: 'local', name: 'named:src', excludes: ['*.tmp'] });
  });

  it('a stage of that name is replaced: its instructions are not converted', async () => {
    const def = await withNamed('FROM busybox AS deps\nRUN exit 1\nFROM busybox\nCOPY --from=deps /a /a', { deps: local });
    expect([...def.graph.vertices.values()].some((v) => v.def.kind === 'exec')).toBe(false);
    const from = inputsOf(def)[1] as FileDef;
    expect(from).toMatchObject({ kind: 'file', hasRoot: false, actions: [{ op: 'copy', paths: ['/'], dest: '/' }] });
  });

  it('FROM NAME of a docker-image context: the image, its config; the registry never sees the name', async () => {
    const resolver = new FakeResolver();
    const def = await withNamed('FROM alpine\nRUN true', { alpine: { kind: 'image', ref: 'docker.io/library/busybox:latest' } }, resolver);
    expect(inputsOf(def)[0]).toMatchObject({ kind: 'image', ref: expect.stringMatching(/busybox@sha256:/) });
    expect(def.config.Labels).toEqual({ 'conf.base': 'busybox' });
    expect(resolver.calls.some((c) => c.includes('alpine'))).toBe(false);
  });

  it('the name matches as BuildKit normalises image names', async () => {
    for (const from of ['alpine', 'alpine:latest', 'docker.io/library/alpine']) {
      const def = await withNamed(`FROM ${from}`, { alpine: { kind: 'image', ref: 'busybox' } });
      expect(def.graph.get(def.root!).def).toMatchObject({ kind: 'image', ref: expect.stringMatching(/busybox@/) });
    }
    await expect(withNamed('FROM alpine:3.18', { alpine: { kind: 'image', ref: 'busybox' } })).rejects.toThrow(/not found/);
  });

  it('FROM NAME of a directory copies it into a filesystem; of a git URL it is the git source', async () => {
    const dir = await withNamed('FROM src\nRUN true', { src: local });
    const copy = inputsOf(dir)[0] as FileDef;
    expect(copy.kind).toBe('file');
    const git = await withNamed('FROM src\nRUN true', { src: { kind: 'git', url: 'https://h/r.git#v1' } });
    expect(inputsOf(git)[0]).toEqual({ kind: 'git', remote: 'https://h/r.git', ref: 'v1', keepGitDir: false });
  });
});
