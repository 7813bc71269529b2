import { describe, expect, it } from 'vitest';
import type { ExecDef, FileDef, VertexDef, BuildDefinition } from '../graph/index.js';
import { BuildliteError } from '../../core/errors.js';
import { platformString, type Platform } from '../../core/oci.js';
import { hostPlatform } from '../../core/platform.js';
import { FakeResolver } from '../../test/dockerfile/fake-resolver.js';
import { convertDockerfile, type ConvertOptions } from './convert.js';
import { DockerfileError, formatDockerfileError } from './errors.js';

const B = 'FROM busybox\n';

function conv(dockerfile: string, opts: Partial<ConvertOptions> = {}): Promise<BuildDefinition> {
  return convertDockerfile({ dockerfile, resolver: new FakeResolver(), ...opts });
}

function rootDef(def: BuildDefinition): VertexDef {
  if (!def.root) throw new Error('no root');
  return def.graph.get(def.root).def;
}

// [dockerfile body after FROM busybox, config fields expected (partial)]
const CONFIG: Array<[string, Record<string, unknown>]> = [
  ['ENV A=1', { Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'A=1'] }],
  ['ENV A 1 2  3', { Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'A=1 2  3'] }],
  ['ENV A=1 B=2', { Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'A=1', 'B=2'] }],
  ['ENV A=1\nENV A=2 B=$A', { Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'A=2', 'B=1'] }],
  ['ENV PATH=/x:$PATH', { Env: ['PATH=/x:/usr/local/bin:/usr/bin:/bin'] }],
  ['ENV A="a b" C=\'$x\'', { Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'A=a b', 'C=$x'] }],
  ['ENV A=\\$B', { Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'A=$B'] }],
  ['ARG V=3\nENV A=$V', { Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'A=3'] }],
  ['ARG V=3\nENV V=env\nENV A=$V', { Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'V=env', 'A=env'] }],
  ['ARG V\nENV A=${V:-none}', { Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'A=none'] }],
  ['ENV A=${UNDECLARED:-d}', { Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'A=d'] }],
  ['LABEL a=b', { Labels: { 'conf.base': 'busybox', a: 'b' } }],
  ['LABEL "a b"="c d" e=', { Labels: { 'conf.base': 'busybox', 'a b': 'c d', e: '' } }],
  ['LABEL conf.base=x', { Labels: { 'conf.base': 'x' } }],
  ['LABEL legacy value here', { Labels: { 'conf.base': 'busybox', legacy: 'value here' } }],
  ['ENV V=1\nLABEL v=$V', { Labels: { 'conf.base': 'busybox', v: '1' } }],
  ['EXPOSE 80', { ExposedPorts: { '80/tcp': {} } }],
  ['EXPOSE 80/udp 443', { ExposedPorts: { '80/udp': {}, '443/tcp': {} } }],
  ['EXPOSE 8000-8002/tcp', { ExposedPorts: { '8000/tcp': {}, '8001/tcp': {}, '8002/tcp': {} } }],
  ['EXPOSE 53/UDP', { ExposedPorts: { '53/udp': {} } }],
  // A host side is exposed as its container port (BuildKit, with an ExposeInvalidFormat warning).
  ['EXPOSE 8080:80 127.0.0.1:9000-9001:90-91/udp [::1]:5353:53', { ExposedPorts: { '80/tcp': {}, '90/udp': {}, '91/udp': {}, '53/tcp': {} } }],
  ['ARG P=9\nEXPOSE $P ${Q:-10}/sctp', { ExposedPorts: { '9/tcp': {}, '10/sctp': {} } }],
  ['USER app', { User: 'app' }],
  ['USER 1000:50', { User: '1000:50' }],
  ['ENV U=nobody\nUSER $U', { User: 'nobody' }],
  ['USER app\nARG U\nUSER $U', { User: '' }],
  ['WORKDIR /a', { WorkingDir: '/a' }],
  ['WORKDIR /a\nWORKDIR b', { WorkingDir: '/a/b' }],
  ['WORKDIR /a/b\nWORKDIR ../c/./d', { WorkingDir: '/a/c/d' }],
  ['WORKDIR a', { WorkingDir: '/a' }],
  ['ENV D=/x\nWORKDIR $D/y', { WorkingDir: '/x/y' }],
  ['WORKDIR /a/', { WorkingDir: '/a' }],
  ['VOLUME /data', { Volumes: { '/data': {} } }],
  ['VOLUME /a /b', { Volumes: { '/a': {}, '/b': {} } }],
  ['VOLUME ["/a", "/b c"]', { Volumes: { '/a': {}, '/b c': {} } }],
  ['ENV V=/v\nVOLUME $V', { Volumes: { '/v': {} } }],
  ['SHELL ["/bin/bash", "-c"]', { Shell: ['/bin/bash', '-c'] }],
  ['STOPSIGNAL SIGKILL', { StopSignal: 'SIGKILL' }],
  ['STOPSIGNAL 9', { StopSignal: '9' }],
  ['STOPSIGNAL TERM', { StopSignal: 'TERM' }],
  ['ENV S=SIGINT\nSTOPSIGNAL $S', { StopSignal: 'SIGINT' }],
  ['HEALTHCHECK NONE', { Healthcheck: { Test: ['NONE'] } }],
  ['HEALTHCHECK CMD true', { Healthcheck: { Test: ['CMD-SHELL', 'true'] } }],
  ['HEALTHCHECK CMD ["true", "x"]', { Healthcheck: { Test: ['CMD', 'true', 'x'] } }],
  [
    'HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=2s --start-interval=1s --retries=0 CMD true',
    { Healthcheck: { Test: ['CMD-SHELL', 'true'], Interval: 90e9, Timeout: 5e8, StartPeriod: 2e9, StartInterval: 1e9, Retries: 0 } },
  ],
  ['HEALTHCHECK --interval=0 CMD x', { Healthcheck: { Test: ['CMD-SHELL', 'x'], Interval: 0 } }],
  ['CMD ["a", "b"]', { Cmd: ['a', 'b'] }],
  ['CMD echo $HOME', { Cmd: ['/bin/sh', '-c', 'echo $HOME'] }],
  ['CMD []', { Cmd: [] }],
  ['SHELL ["/bin/ash", "-eo"]\nCMD x', { Cmd: ['/bin/ash', '-eo', 'x'] }],
  ['ENTRYPOINT ["e"]', { Entrypoint: ['e'], Cmd: undefined }],
  ['CMD ["c"]\nENTRYPOINT ["e"]', { Entrypoint: ['e'], Cmd: ['c'] }],
  ['ENTRYPOINT ["e"]\nCMD ["c"]', { Entrypoint: ['e'], Cmd: ['c'] }],
  ['ENTRYPOINT run it', { Entrypoint: ['/bin/sh', '-c', 'run it'] }],
  ['ENTRYPOINT []', { Entrypoint: [] }],
  ['ONBUILD RUN echo hi', { OnBuild: ['RUN echo hi'] }],
  ['ONBUILD ENV A=$B\nONBUILD COPY . /x', { OnBuild: ['ENV A=$B', 'COPY . /x'] }],
];

describe('config table', () => {
  it.each(CONFIG)('%j', async (body, want) => {
    const def = await conv(B + body);
    for (const [k, v] of Object.entries(want)) expect((def.config as Record<string, unknown>)[k]).toEqual(v);
  });
});

// [body, check of the last vertex]
const RUNS: Array<[string, Partial<ExecDef>]> = [
  ['RUN make', { args: ['/bin/sh', '-c', 'make'], cwd: '/', user: { user: '0' }, network: 'default', mounts: [] }],
  ['RUN ["a", "b c"]', { args: ['a', 'b c'] }],
  ['RUN echo $HOME "${X}"', { args: ['/bin/sh', '-c', 'echo $HOME "${X}"'] }],
  ['RUN a \\\n  b', { args: ['/bin/sh', '-c', 'a   b'] }],
  ['RUN a \\\n# c\n  b', { args: ['/bin/sh', '-c', 'a   b'] }],
  ['SHELL ["/bin/bash", "-c"]\nRUN x', { args: ['/bin/bash', '-c', 'x'] }],
  ['WORKDIR /w\nRUN x', { cwd: '/w' }],
  ['USER app:staff\nRUN x', { user: { user: 'app', group: 'staff' } }],
  ['ENV A=1\nRUN x', { env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'A=1'] }],
  ['ARG V=2\nRUN x', { env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'V=2'] }],
  ['ARG V\nRUN x', { env: ['PATH=/usr/local/bin:/usr/bin:/bin'] }],
  ['ARG V=2\nENV V=3\nRUN x', { env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'V=3'] }],
  ['RUN --network=none x', { network: 'none' }],
  ['RUN --network=host x', { network: 'host' }],
  ['RUN --security=insecure x', { security: 'insecure' }],
  ['RUN --security=sandbox x', { security: undefined }],
  ['RUN <<EOF\necho a\necho b\nEOF', { args: ['/bin/sh', '-c', 'echo a\necho b\n'] }],
  ['RUN <<-EOF\n\techo a\n\tEOF', { args: ['/bin/sh', '-c', 'echo a\n'] }],
  ['RUN <<"EOF"\necho $a\nEOF', { args: ['/bin/sh', '-c', 'echo $a\n'] }],
  ['RUN cat <<A <<B > /x\na\nA\nb\nB', { args: ['/bin/sh', '-c', 'cat <<A <<B > /x\na\nA\nb\nB'] }],
  ['RUN python3 <<EOF\nprint(1)\nEOF', { args: ['/bin/sh', '-c', 'python3 <<EOF\nprint(1)\nEOF'] }],
  ['RUN --mount=type=tmpfs,target=/t,size=64m x', { mounts: [{ type: 'tmpfs', target: '/t', size: 64 * 1024 * 1024 }] }],
  [
    'RUN --mount=type=cache,target=/c x',
    { mounts: [{ type: 'cache', target: '/c', id: '/c', sharing: 'shared', mode: 0o755, uid: 0, gid: 0, readonly: false }] },
  ],
  [
    'RUN --mount=type=cache,id=go,target=/c,sharing=locked,mode=0700,uid=1,gid=2,ro x',
    { mounts: [{ type: 'cache', target: '/c', id: 'go', sharing: 'locked', mode: 0o700, uid: 1, gid: 2, readonly: true }] },
  ],
  [
    'RUN --mount=type=secret,id=tok x',
    { mounts: [{ type: 'secret', target: '/run/secrets/tok', id: 'tok', required: false, mode: 0o400, uid: 0, gid: 0 }] },
  ],
  [
    'RUN --mount=type=secret,id=tok,env=TOKEN,required x',
    { mounts: [{ type: 'secret', env: 'TOKEN', id: 'tok', required: true, mode: 0o400, uid: 0, gid: 0 }] },
  ],
  [
    'RUN --mount=type=secret,target=/k/key,mode=0444,uid=5 x',
    { mounts: [{ type: 'secret', target: '/k/key', id: 'key', required: false, mode: 0o444, uid: 5, gid: 0 }] },
  ],
  ['RUN --mount=target=/src x', { mounts: [{ type: 'bind', target: '/src', input: 1, source: '/', readonly: true }] }],
  ['RUN --mount=type=bind,source=a,target=/src,rw x', { mounts: [{ type: 'bind', target: '/src', input: 1, source: 'a', readonly: false }] }],
  ['ARG D=/dst\nRUN --mount=type=bind,target=$D x', { mounts: [{ type: 'bind', target: '/dst', input: 1, source: '/', readonly: true }] }],
  // No target: BuildKit mounts at the working directory; a relative target is relative to it.
  ['WORKDIR /src\nRUN --mount=type=bind x', { mounts: [{ type: 'bind', target: '/src', input: 1, source: '/', readonly: true }] }],
  ['WORKDIR /w\nRUN --mount=type=bind,target=sub x', { mounts: [{ type: 'bind', target: '/w/sub', input: 1, source: '/', readonly: true }] }],
  [
    'WORKDIR /w\nRUN --mount=type=cache,target=c x',
    { mounts: [{ type: 'cache', target: '/w/c', id: 'c', sharing: 'shared', mode: 0o755, uid: 0, gid: 0, readonly: false }] },
  ],
  ['WORKDIR /w\nRUN --mount=type=tmpfs x', { mounts: [{ type: 'tmpfs', target: '/w' }] }],
  [
    'RUN --mount=type=secret,source=tok x',
    { mounts: [{ type: 'secret', target: '/run/secrets/tok', id: 'tok', required: false, mode: 0o400, uid: 0, gid: 0 }] },
  ],
  // `[` that is not a JSON string array is shell form (BuildKit's parser falls back the same way).
  ['RUN [ "$X" = "true" ] && exit 0; echo go', { args: ['/bin/sh', '-c', '[ "$X" = "true" ] && exit 0; echo go'] }],
  ['RUN ["a", ]', { args: ['/bin/sh', '-c', '["a", ]'] }],
  ['RUN [ -f /x ] || touch /x', { args: ['/bin/sh', '-c', '[ -f /x ] || touch /x'] }],
];

describe('RUN table', () => {
  it.each(RUNS)('%j', async (body, want) => {
    const def = await conv(B + body);
    const v = rootDef(def) as ExecDef;
    expect(v.kind).toBe('exec');
    for (const [k, val] of Object.entries(want)) expect((v as unknown as Record<string, unknown>)[k]).toEqual(val);
  });

  it('puts proxy args in RUN env without an ARG, and keeps them out of history', async () => {
    const def = await conv(`${B}ARG V=1\nRUN x`, { buildArgs: { HTTP_PROXY: 'http://p:3128' } });
    const v = rootDef(def) as ExecDef;
    expect(v.env).toContain('HTTP_PROXY=http://p:3128');
    expect(def.history.at(-1)?.created_by).toBe('RUN |1 V=1 /bin/sh -c x # buildkit');
    expect(def.warnings).toEqual([]);
  });

  it('runs a heredoc with a shebang as a mounted script', async () => {
    const def = await conv(`${B}RUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF`);
    const v = rootDef(def) as ExecDef;
    expect(v.args).toEqual(['/dev/pipes/EOF']);
    expect(v.mounts[0]).toMatchObject({ type: 'bind', target: '/dev/pipes/', readonly: true });
  });

  it('mounts another stage with from=', async () => {
    const def = await conv('FROM busybox AS a\nRUN build\nFROM busybox\nRUN --mount=from=a,source=/out,target=/in x');
    const v = def.graph.get(def.root as never);
    expect(v.inputs).toHaveLength(2);
    expect(def.graph.get(v.inputs[1] as never).def).toMatchObject({ kind: 'exec', args: ['/bin/sh', '-c', 'build'] });
  });

  it('RUN on scratch has no root input', async () => {
    const def = await conv('FROM scratch\nRUN x');
    expect(rootDef(def)).toMatchObject({ kind: 'exec', hasRoot: false, env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] });
  });
});

// [body, expected actions of the last file vertex]
const COPIES: Array<[string, unknown[]]> = [
  ['COPY a /b', [{ op: 'copy', src: 1, paths: ['a'], dest: '/b', excludes: [], add: false }]],
  ['COPY a b /c/', [{ op: 'copy', src: 1, paths: ['a', 'b'], dest: '/c/', excludes: [], add: false }]],
  ['COPY ["a b", "/c d/"]', [{ op: 'copy', src: 1, paths: ['a b'], dest: '/c d/', excludes: [], add: false }]],
  ['WORKDIR /w\nCOPY a b', [{ op: 'copy', src: 1, paths: ['a'], dest: '/w/b', excludes: [], add: false }]],
  ['WORKDIR /w\nCOPY a .', [{ op: 'copy', src: 1, paths: ['a'], dest: '/w/', excludes: [], add: false }]],
  ['WORKDIR /w\nCOPY a ../x/', [{ op: 'copy', src: 1, paths: ['a'], dest: '/x/', excludes: [], add: false }]],
  ['COPY *.txt /t/', [{ op: 'copy', src: 1, paths: ['*.txt'], dest: '/t/', excludes: [], add: false }]],
  ['ENV F=f\nCOPY $F /${F}/', [{ op: 'copy', src: 1, paths: ['f'], dest: '/f/', excludes: [], add: false }]],
  ['COPY --chown=app:staff --chmod=640 a /b', [{ op: 'copy', src: 1, paths: ['a'], dest: '/b', excludes: [], add: false, chown: { user: 'app', group: 'staff' }, chmod: '640' }]],
  ['ARG M=u+x\nCOPY --chmod=$M,go-w a /b', [{ op: 'copy', src: 1, paths: ['a'], dest: '/b', excludes: [], add: false, chmod: 'u+x,go-w' }]],
  ['COPY --parents x/a.txt y/./**/*.go /p', [{ op: 'copy', src: 1, paths: ['x/a.txt', 'y/./**/*.go'], dest: '/p', excludes: [], add: false, parents: true }]],
  ['COPY --parents=false a /b', [{ op: 'copy', src: 1, paths: ['a'], dest: '/b', excludes: [], add: false }]],
  ['COPY --chown=1000 a /b', [{ op: 'copy', src: 1, paths: ['a'], dest: '/b', excludes: [], add: false, chown: { user: '1000' } }]],
  ['COPY --exclude=*.md --exclude=x . /b/', [{ op: 'copy', src: 1, paths: ['.'], dest: '/b/', excludes: ['*.md', 'x'], add: false }]],
  // BuildKit links only without --chmod.
  ['COPY --link --chmod=755 a /b', [{ op: 'copy', src: 1, paths: ['a'], dest: '/b', excludes: [], add: false, chmod: '755' }]],
  ['ADD a.tar /x/', [{ op: 'copy', src: 1, paths: ['a.tar'], dest: '/x/', excludes: [], add: true }]],
  ['COPY <<EOF /f\nhi $HOME\nEOF', [{ op: 'copy', src: 1, paths: ['EOF'], dest: '/f', excludes: [], add: false, literal: true }]],
  ['ADD https://example.com/x/file.tgz /d/', [{ op: 'copy', src: 1, paths: ['file.tgz'], dest: '/d/', excludes: [], add: true, literal: true }]],
  ['ADD --unpack=false a.tar /x/', [{ op: 'copy', src: 1, paths: ['a.tar'], dest: '/x/', excludes: [], add: false }]],
  ['ADD --unpack=true https://example.com/x/file.tgz /d/', [{ op: 'copy', src: 1, paths: ['file.tgz'], dest: '/d/', excludes: [], add: true, literal: true, unpack: true }]],
];

describe('COPY/ADD table', () => {
  it.each(COPIES)('%j', async (body, actions) => {
    const def = await conv(B + body);
    const v = rootDef(def) as FileDef;
    expect(v.kind).toBe('file');
    expect(v.actions).toEqual(actions);
  });

  it('--link copies into an empty filesystem and merges it onto the stage', async () => {
    const def = await conv(`${B}WORKDIR /w\nCOPY --link --chown=1000:root a b`);
    const merge = def.graph.get(def.root as never);
    expect(merge.def).toEqual({ kind: 'merge' });
    const [below, copied] = merge.inputs.map((d) => def.graph.get(d));
    expect(below?.def).toMatchObject({ kind: 'file', hasRoot: true, actions: [{ op: 'mkdir', path: '/w' }] });
    expect(copied?.def).toEqual({ kind: 'file', hasRoot: false, actions: [{ op: 'copy', src: 0, paths: ['a'], dest: '/w/b', excludes: [], add: false, chown: { user: '1000', group: '0' } }] });
    expect(copied?.inputs.map((d) => def.graph.get(d).def.kind)).toEqual(['local']);
    expect(def.graph.meta.get(def.root as never)?.name).toBe('[stage-0 3/3] LINK COPY --link --chown=1000:root a b');
    expect(def.graph.meta.get(merge.inputs[1] as never)?.name).toBe('[stage-0 3/3] COPY --link --chown=1000:root a b');
    expect(def.history.at(-1)).toMatchObject({ created_by: 'COPY a b # buildkit', vertex: def.root });
  });

  it('a linked copy does not depend on what is below it; a plain one does', async () => {
    const copiedOf = (d: BuildDefinition) => d.graph.get(d.root as never).inputs[1];
    const a = await conv(`${B}RUN one\nCOPY --link a /a`);
    const b = await conv(`${B}RUN two\nCOPY --link a /a`);
    expect(copiedOf(a)).toBe(copiedOf(b));
    expect(a.root).not.toBe(b.root);
    const plainA = await conv(`${B}RUN one\nCOPY a /a`);
    const plainB = await conv(`${B}RUN two\nCOPY a /a`);
    expect(plainA.root).not.toBe(plainB.root);
  });

  it('a stage name given twice means the last stage of that name, for --from, FROM and --target (BuildKit)', async () => {
    const df = 'FROM busybox AS a\nRUN first\nFROM busybox AS a\nRUN second\nFROM busybox AS b\nCOPY --from=a /x /x\nFROM a';
    const copyFrom = await conv(df, { target: 'b' });
    const stageA = copyFrom.graph.get(copyFrom.graph.get(copyFrom.root as never).inputs[1] as never);
    expect(stageA.def).toMatchObject({ kind: 'exec', args: ['/bin/sh', '-c', 'second'] });
    expect(rootDef(await conv(df))).toMatchObject({ kind: 'exec', args: ['/bin/sh', '-c', 'second'] });
    expect(rootDef(await conv(df, { target: 'a' }))).toMatchObject({ kind: 'exec', args: ['/bin/sh', '-c', 'second'] });
  });

  it('--link on scratch is the plain copy', async () => {
    expect(rootDef(await conv('FROM scratch\nCOPY --link a /a'))).toMatchObject({ kind: 'file', hasRoot: false });
  });

  it('one context vertex with the dockerignore patterns', async () => {
    const def = await conv(`${B}COPY a /a\nCOPY b /b`, { dockerignore: '# c\n*.key\n!keep.key\n' });
    const locals = [...def.graph.vertices.values()].filter((v) => v.def.kind === 'local');
    expect(locals).toHaveLength(1);
    expect(locals[0]?.def).toMatchObject({ kind: 'local', name: 'context' });
    expect((locals[0]?.def as unknown as { excludes: string[] }).excludes.length).toBe(2);
  });

  it('expands heredoc COPY bodies (variables only) unless the delimiter is quoted', async () => {
    const data = async (df: string) => {
      const def = await conv(B + df);
      const mk = [...def.graph.vertices.values()].find((v) => v.def.kind === 'file' && v.def.actions[0]?.op === 'mkfile');
      return (mk?.def as FileDef).actions[0];
    };
    expect(await data('ENV A=1\nCOPY <<EOF /f\n"$A" \\$A\nEOF')).toMatchObject({ data: '"1" \\$A\n', mode: 0o644 });
    expect(await data('ENV A=1\nCOPY <<"EOF" /f\n$A\nEOF')).toMatchObject({ data: '$A\n' });
  });

  it('ADD URL with --checksum becomes an http source', async () => {
    const sum = `sha256:${'a'.repeat(64)}`;
    const def = await conv(`${B}ADD --checksum=${sum} https://example.com/f /f`);
    const http = [...def.graph.vertices.values()].find((v) => v.def.kind === 'http');
    expect(http?.def).toEqual({ kind: 'http', url: 'https://example.com/f', checksum: sum, filename: 'f', mode: 0o600 });
  });

  it('COPY --from by name, by index and by image', async () => {
    const df = 'FROM busybox AS a\nRUN one\nFROM busybox AS b\nRUN two\nFROM busybox\nCOPY --from=a /x /x\nCOPY --from=1 /y /y\nCOPY --from=busybox:1 /z /z';
    const r = new FakeResolver();
    const def = await conv(df, { resolver: r });
    expect(r.calls).toContain('busybox:1');
    const execs = [...def.graph.vertices.values()].filter((v) => v.def.kind === 'exec').map((v) => (v.def as ExecDef).args[2]);
    expect(execs.sort()).toEqual(['one', 'two']);
  });

  it('WORKDIR makes a directory owned by the current USER', async () => {
    const def = await conv(`${B}USER app\nWORKDIR /w`);
    expect(rootDef(def)).toEqual({ kind: 'file', hasRoot: true, actions: [{ op: 'mkdir', path: '/w', mode: 0o755, chown: { user: 'app' } }] });
    expect(def.history.at(-1)).toMatchObject({ created_by: 'WORKDIR /w', vertex: def.root });
  });
});

describe('args and stages', () => {
  it('global ARG in FROM, build-arg override, and inheritance into child stages', async () => {
    const r = new FakeResolver();
    const df = 'ARG TAG=1\nFROM busybox:$TAG AS p\nARG X=p\nFROM p\nRUN x';
    const def = await conv(df, { resolver: r, buildArgs: { TAG: '2', X: 'cli' } });
    expect(r.calls).toEqual(['busybox:2']);
    expect((rootDef(def) as ExecDef).env).toContain('X=cli');
  });

  it('predefined platform args are usable in FROM and after ARG', async () => {
    const r = new FakeResolver();
    const def = await conv('FROM busybox:$TARGETARCH\nARG TARGETPLATFORM\nARG BUILDOS\nRUN x', { resolver: r });
    expect(r.calls).toEqual(['busybox:amd64']);
    expect((rootDef(def) as ExecDef).env).toEqual(expect.arrayContaining(['TARGETPLATFORM=linux/amd64', 'BUILDOS=linux']));
  });

  it.each([
    [{ os: 'linux', architecture: 'arm64' }, ['TARGETPLATFORM=linux/arm64', 'TARGETOS=linux', 'TARGETARCH=arm64', 'TARGETVARIANT=']],
    [{ os: 'linux', architecture: 'arm', variant: 'v7' }, ['TARGETPLATFORM=linux/arm/v7', 'TARGETARCH=arm', 'TARGETVARIANT=v7']],
  ])('the target platform args of %j, the build platform args of the host', async (platform, target) => {
    const df = 'FROM busybox\nARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDOS BUILDARCH BUILDVARIANT\nRUN x';
    const def = await conv(df, { platform });
    const env = (rootDef(def) as ExecDef).env;
    expect(env).toEqual(expect.arrayContaining(target));
    if (process.arch === 'x64') expect(env).toEqual(expect.arrayContaining(['BUILDPLATFORM=linux/amd64', 'BUILDOS=linux', 'BUILDARCH=amd64', 'BUILDVARIANT=']));
    expect(def.platform).toEqual(platform);
  });

  it('FROM --platform=$BUILDPLATFORM resolves the base for the host; other stages for the target', async () => {
    const seen: string[] = [];
    const r = new FakeResolver();
    const resolver = { resolve: (ref: string, p: Platform) => (seen.push(`${ref} ${platformString(p)}`), r.resolve(ref, p)) };
    await conv('FROM --platform=$BUILDPLATFORM busybox AS build\nRUN x\nFROM busybox:2\nCOPY --from=build /x /x', { platform: { os: 'linux', architecture: 'arm64' }, resolver });
    expect(seen.sort()).toEqual([`busybox ${platformString(hostPlatform())}`, 'busybox:2 linux/arm64']);
  });

  it('a RUN carries its stage platform, absent for linux/amd64 (keys made before platforms stay as they were)', async () => {
    const arm = await conv('FROM scratch\nRUN x', { platform: { os: 'linux', architecture: 'arm64' } });
    const amd = await conv('FROM scratch\nRUN x', { platform: { os: 'linux', architecture: 'amd64' } });
    expect((rootDef(arm) as ExecDef).platform).toEqual({ os: 'linux', architecture: 'arm64' });
    expect((rootDef(amd) as ExecDef).platform).toBeUndefined();
    // Same command on scratch, other platform: another vertex, so another key.
    expect(arm.root).not.toBe(amd.root);
  });

  it('a FROM --platform=$BUILDPLATFORM stage is the same vertices whatever the target; the target stages are not', async () => {
    const df = [
      'FROM --platform=$BUILDPLATFORM busybox AS build',
      'ARG BUILDARCH',
      'RUN for a in amd64 arm64; do echo $a > /out-$a; done',
      'FROM busybox',
      'ARG TARGETARCH',
      'COPY --from=build /out-$TARGETARCH /arch',
    ].join('\n');
    const build = async (architecture: string) => {
      const def = await conv(df, { platform: { os: 'linux', architecture } });
      const copy = def.graph.get(def.root as never);
      return { buildRun: copy.inputs[1], copy: def.root, meta: def.graph.meta.get(copy.inputs[1] as never) };
    };
    const amd = await build('amd64');
    const arm = await build('arm64');
    expect(arm.buildRun).toBe(amd.buildRun);
    expect(arm.copy).not.toBe(amd.copy);
    expect(arm.meta?.platform).toBe(platformString(hostPlatform()));
  });

  it('a build stage that declares ARG TARGETARCH is a vertex per target (its output may differ)', async () => {
    const df = 'FROM --platform=$BUILDPLATFORM busybox AS build\nARG TARGETARCH\nRUN echo $TARGETARCH > /o\nFROM scratch\nCOPY --from=build /o /o';
    const amd = await conv(df, { platform: { os: 'linux', architecture: 'amd64' } });
    const arm = await conv(df, { platform: { os: 'linux', architecture: 'arm64' } });
    const runOf = (d: BuildDefinition) => d.graph.get(d.root as never).inputs[0];
    expect(runOf(arm)).not.toBe(runOf(amd));
  });

  it('warns about build args nobody declares', async () => {
    const def = await conv(`${B}ARG USED\nRUN x`, { buildArgs: { USED: '1', UNUSED: '2' } });
    expect(def.warnings.map((w) => w.message).join()).toContain('UNUSED');
    expect(def.warnings.map((w) => w.message).join()).not.toContain('"USED"');
  });

  it('ONBUILD triggers of the base run after FROM and are cleared', async () => {
    const r = new FakeResolver({ busybox: { config: { Env: ['PATH=/bin'], OnBuild: ['ENV T=1', 'RUN echo t'] } } });
    const def = await conv(`${B}RUN after`, { resolver: r });
    expect(def.config.OnBuild).toBeUndefined();
    expect(def.config.Env).toContain('T=1');
    const run = def.graph.get(def.graph.get(def.root as never).inputs[0] as never);
    expect((run.def as ExecDef).args).toEqual(['/bin/sh', '-c', 'echo t']);
  });

  it('MAINTAINER sets the author; base history is inherited', async () => {
    const def = await conv(`${B}MAINTAINER me <me@x>\nENV A=1\nRUN x\nCOPY a /a`);
    expect(def.author).toBe('me <me@x>');
    expect(def.history.map((h) => [h.created_by, !!h.inherited, !!h.empty_layer, !!h.vertex])).toEqual([
      ['busybox base', true, false, false],
      ['MAINTAINER me <me@x>', false, true, false],
      ['ENV A=1', false, true, false],
      ['RUN /bin/sh -c x # buildkit', false, false, true],
      ['COPY a /a # buildkit', false, false, true],
    ]);
  });

  it('labels from options are merged into the config', async () => {
    const def = await conv(B, { labels: { 'org.x': 'y' } });
    expect(def.config.Labels).toEqual({ 'conf.base': 'busybox', 'org.x': 'y' });
  });

  it('a 3-stage Dockerfile whose target needs 2 keeps exactly those 2', async () => {
    const df = 'FROM busybox AS lib\nRUN make lib\nFROM busybox AS unrelated\nRUN make other\nFROM busybox AS app\nRUN make app\nCOPY --from=lib /lib /lib';
    const def = await conv(df);
    expect(new Set([...def.graph.vertices.keys()].map((d) => def.graph.stageOf(d)).filter((s) => s !== undefined))).toEqual(new Set(['lib', 'app']));
    const args = [...def.graph.vertices.values()].flatMap((v) => (v.def.kind === 'exec' ? [v.def.args[2]] : []));
    expect(args.sort()).toEqual(['make app', 'make lib']);
    const lib = await conv(df, { target: 'lib' });
    expect(new Set([...lib.graph.vertices.keys()].map((d) => lib.graph.stageOf(d)).filter((s) => s !== undefined))).toEqual(new Set(['lib']));
  });

  it('stage names and ranges go to the side map, not the digest', async () => {
    const a = await conv(`${B}RUN x`);
    const b = await conv(`# comment\n\n${B}RUN   x`);
    expect(a.root).toBe(b.root);
    expect(a.graph.meta.get(a.root as never)?.name).toBe('[stage-0 2/2] RUN x');
    expect(b.graph.meta.get(b.root as never)?.range?.startLine).toBe(4);
  });

  it('a base re-tag (new pinned digest) changes every digest after FROM', async () => {
    const other = new FakeResolver({ busybox: { config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Cmd: ['sh'], Labels: { 'conf.base': 'busybox', v: '2' } } } });
    const a = await conv(`${B}RUN x`);
    const b = await conv(`${B}RUN x`, { resolver: other });
    expect(a.root).not.toBe(b.root);
  });
});

// [dockerfile, message part, line]
const ERRORS: Array<[string, string, number]> = [
  ['FROM busybox\nFOOBAR x', 'unknown instruction: FOOBAR', 2],
  ['FROM busybox\nRUNN x', 'unknown instruction', 2],
  ['RUN x', 'FROM', 1],
  ['ARG A\nENV A=1\nFROM busybox', 'before the first FROM', 2],
  ['# just a comment\n', 'no instructions', 1],
  ['ARG A=1', 'no FROM', 1],
  ['FROM busybox\nCOPY --frm=a b c', 'unknown flag: --frm', 2],
  ['FROM busybox\nCOPY --from=a --from=b c d', 'duplicate flag', 2],
  ['FROM busybox\nCOPY --from c d', 'missing a value', 2],
  ['FROM busybox\nCOPY --link=maybe c d', 'expecting boolean', 2],
  ['FROM busybox\nENV --x=1 A=1', 'unknown flag', 2],
  ['FROM busybox\nRUN --network=bridge x', 'invalid --network', 2],
  ['FROM busybox\nRUN --security=privileged x', 'invalid --security=privileged', 2],
  ['FROM busybox\nRUN --mount=type=ssh,source=/x x', 'unexpected key "source" for type=ssh', 2],
  ['FROM busybox\nRUN --mount=type=bogus,target=/x x', 'unsupported mount type', 2],
  ['FROM busybox\nRUN --mount=type=cache x', 'cannot cover the root', 2],
  ['FROM busybox\nRUN --mount=from=busybox echo', 'cannot cover the root', 2],
  ['FROM busybox\nRUN --mount=type=secret,id=a,source=b x', 'not both', 2],
  ['FROM busybox\nRUN --mount=type=cache,target=/x,sharing=odd x', 'invalid sharing', 2],
  ['FROM busybox\nRUN --mount=type=tmpfs,target=/x,size=big x', 'invalid --mount size', 2],
  ['FROM busybox\nRUN --mount=type=bind,target=/x,bogus=1 x', 'unexpected key', 2],
  ['FROM busybox\nCOPY onlyone', 'at least two arguments', 2],
  ['FROM busybox\nCOPY', 'at least two arguments', 2],
  ['FROM busybox\nADD x', 'at least two arguments', 2],
  ['FROM busybox\nCOPY a b c', 'must be a directory', 2],
  ['FROM busybox\nCOPY --chmod=rwx a b', 'invalid --chmod', 2],
  ['FROM busybox\nCOPY --chmod=u+z a b', 'invalid --chmod "u+z"', 2],
  ['FROM busybox\nCOPY --chmod=8 a b', 'invalid --chmod', 2],
  ['FROM busybox\nCOPY --chown=:x a b', 'invalid --chown', 2],
  ['FROM busybox\nCOPY --checksum=sha256:00 a b', 'unknown flag', 2],
  ['FROM busybox\nADD --parents a /b/', 'unknown flag: --parents', 2],
  ['FROM busybox\nCOPY --unpack=false a /b/', 'unknown flag: --unpack', 2],
  ['FROM busybox\nCOPY --link --chown=app a /b', 'numeric id', 2],
  ['FROM busybox\nCOPY --link --chown=1:staff a /b', 'no group database', 2],
  ['FROM busybox\nADD --checksum=sha256:00 https://x/y /y', 'want sha256', 2],
  ['FROM busybox\nADD --checksum=sha256:00 a /y', 'HTTP', 2],
  ['FROM busybox\nCOPY --from=nosuch /a /b', 'nosuch', 2],
  ['FROM busybox AS a\nCOPY --from=a /x /y', 'refers to itself', 2],
  ['FROM busybox AS a\nCOPY --from=b /x /y\nFROM busybox AS b\nCOPY --from=a /x /y', 'circular', 1],
  ['FROM busybox\nCOPY --from=5 /x /y', 'index', 2],
  ['FROM busybox AS 1x', 'invalid name for build stage', 1],
  ['FROM busybox AS', 'one or three arguments', 1],
  ['FROM busybox BS x', 'one or three arguments', 1],
  ['FROM $NOTHING', 'should not be blank', 1],
  ['FROM --platform=linux/ busybox', 'invalid platform', 1],
  ['FROM --platform=linux/amd64/v3/x busybox', 'want OS/ARCH[/VARIANT]', 1],
  ['FROM busybox\nCMD ["a", 1]', 'strings only', 2],
  ['FROM busybox\nRUN [["a"]]', 'strings only', 2],
  ['FROM busybox\nSHELL /bin/sh -c', 'JSON form', 2],
  ['FROM busybox\nSHELL []', 'at least one', 2],
  ['FROM busybox\nHEALTHCHECK --interval=5 CMD x', 'invalid duration', 2],
  ['FROM busybox\nHEALTHCHECK --timeout=1us CMD x', 'less than 1ms', 2],
  ['FROM busybox\nHEALTHCHECK --retries=-1 CMD x', 'invalid', 2],
  ['FROM busybox\nHEALTHCHECK --bogus=1 CMD x', 'unknown flag', 2],
  ['FROM busybox\nHEALTHCHECK RUN x', 'try CMD', 2],
  ['FROM busybox\nHEALTHCHECK NONE x', 'no arguments', 2],
  ['FROM busybox\nEXPOSE 80/bogus', 'invalid protocol', 2],
  ['FROM busybox\nEXPOSE http', 'invalid port', 2],
  ['FROM busybox\nEXPOSE 70000', 'invalid port', 2],
  ['FROM busybox\nEXPOSE 90-80', 'invalid port range', 2],
  ['FROM busybox\nEXPOSE 300.0.0.1:80:80', 'is not an IP address', 2],
  ['FROM busybox\nEXPOSE 8000-8002:80-81', 'differ in size', 2],
  ['FROM busybox\nEXPOSE /tcp', 'no port given', 2],
  ['FROM busybox\nSTOPSIGNAL SIGBOGUS', 'invalid signal', 2],
  ['FROM busybox\nSTOPSIGNAL 99', 'invalid signal', 2],
  ['FROM busybox\nENV', 'at least one', 2],
  ['FROM busybox\nENV A', 'two arguments', 2],
  ['FROM busybox\nENV A=1 B', "can't find =", 2],
  ['FROM busybox\nENV =1', 'can not be blank', 2],
  ['FROM busybox\nLABEL a=1 b', "can't find =", 2],
  ['FROM busybox\nARG =x', 'can not be blank', 2],
  ['FROM busybox\nENV A="unterminated', 'double-quote', 2],
  ['FROM busybox\nENV A=${B', "missing '}'", 2],
  ['FROM busybox\nWORKDIR ${A:?must be set}', 'must be set', 2],
  ['FROM busybox\nONBUILD ONBUILD RUN x', 'ONBUILD', 2],
  ['FROM busybox\nONBUILD FROM x', 'ONBUILD', 2],
  ['FROM busybox\nONBUILD MAINTAINER x', 'ONBUILD', 2],
  ['FROM busybox\nONBUILD', 'at least one', 2],
  ['FROM busybox\nRUN', 'at least one', 2],
  ['FROM busybox\nUSER', 'at least one', 2],
  ['FROM busybox\nRUN <<EOF\nnever closed', 'heredoc', 2],
  ['FROM busybox\nADD https://u:p@example.com/y.git /y', 'credentials in a git URL are refused', 2],
  ['FROM busybox\nADD --checksum=sha256:00 https://example.com/y.git /y', 'commit id', 2],
];

describe('errors name the line', () => {
  it.each(ERRORS)('%j', async (df, part, line) => {
    const err = await conv(df).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DockerfileError);
    const e = err as DockerfileError;
    expect(e.message).toContain(part);
    expect(e.range?.startLine).toBe(line);
    expect(e.range?.file).toBe('Dockerfile');
  });

  it('a resolver failure keeps its own error class and gains the FROM line', async () => {
    const err = (await conv('# c\nFROM nosuchimage').catch((e: unknown) => e)) as BuildliteError;
    expect(err).toBeInstanceOf(BuildliteError);
    expect(err.code).toBe('NOT_FOUND');
    expect(err.range?.startLine).toBe(2);
  });

  it('unknown --target', async () => {
    await expect(conv(B, { target: 'nope' })).rejects.toThrow(/target stage "nope" could not be found/);
  });

  it('suggests the instruction meant', async () => {
    const err = (await conv(`${B}COPPY a b`).catch((e: unknown) => e)) as DockerfileError;
    expect(err.suggestion).toBe('COPY');
    const text = formatDockerfileError(err, `${B}COPPY a b`);
    expect(text).toMatch(/^ *2 \| >>> COPPY a b$/m);
    expect(text).toContain('Dockerfile:2');
    expect(text).toContain('did you mean COPY?');
  });

  it('an error in a trigger names the FROM line', async () => {
    const r = new FakeResolver({ busybox: { config: { OnBuild: ['EXPOSE nope'] } } });
    const err = (await conv(`# x\n${B}`, { resolver: r }).catch((e: unknown) => e)) as DockerfileError;
    expect(err).toBeInstanceOf(DockerfileError);
    expect(err.range?.startLine).toBe(2);
  });
});

describe('directives', () => {
  it('escape=` changes the continuation character', async () => {
    const def = await conv('# escape=`\nFROM busybox\nRUN a `\n  b\nLABEL p="C:\\x"');
    expect(def.config.Labels?.p).toBe('C:\\x');
    const run = def.history.find((h) => h.created_by?.startsWith('RUN'));
    expect(run?.created_by).toBe('RUN /bin/sh -c a   b # buildkit');
  });

  it('syntax= naming a foreign frontend gives a warning with a range', async () => {
    const def = await conv('# syntax=example.com/my/frontend:1\nFROM busybox');
    expect(def.warnings[0]?.message).toContain('example.com/my/frontend');
    expect(def.warnings[0]?.range?.startLine).toBe(1);
    const ok = await conv('# syntax=docker/dockerfile:1.7\nFROM busybox');
    expect(ok.warnings).toEqual([]);
  });
});
