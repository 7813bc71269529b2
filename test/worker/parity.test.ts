/**
 * A build through the service gives the image a local build gives, byte for
 * byte: the same Dockerfile and context, built by the embedded CLI and by
 * `build --server` (two workers), must have the same manifest digest (with
 * SOURCE_DATE_EPOCH), or fail both ways with the same error code. The cases
 * are contexts made to catch what an upload can lose (the root's mode, old
 * mtimes, hardlinks, FIFOs, setuid bits, ignored dirs with `!` rules), plus
 * every conformance case when the suite is present (test/helpers/conformance.ts).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, link, lstat, mkdir, mkdtemp, readFile, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushBusyboxBase } from '../helpers/base-image.js';
import { CONFORMANCE_DIR, conformanceCases as allConformanceCases } from '../helpers/conformance.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { cleanupRoots, startService, TOKENS, type Service } from '../helpers/service.js';

const sh = promisify(execFile);
const CONFORMANCE = CONFORMANCE_DIR;
const conformanceCases = existsSync(path.join(CONFORMANCE, 'lib/stage.py')) ? allConformanceCases() : [];
/** 2024-01-01: files of the hand-made contexts are older, so their mtimes reach the image unclamped. */
const EPOCH = '1704067200';
const OLD = new Date('2021-06-01T12:00:00Z');

interface Outcome {
  readonly digest?: string;
  readonly error?: string;
  readonly out: string;
}

interface Case {
  readonly name: string;
  readonly dockerfile: (base: string) => string;
  /** Writes the context into dir. */
  readonly context: (dir: string) => Promise<void>;
  readonly args?: readonly string[];
}

/** Gives every entry under dir (and dir) an old mtime, deepest first, so parents keep theirs. */
async function age(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const p = path.join(dir, name);
    const st = await lstat(p);
    if (st.isDirectory()) await age(p);
    else if (!st.isSymbolicLink()) await utimes(p, OLD, OLD);
  }
  await utimes(dir, OLD, OLD);
}

const files = (tree: Record<string, string>) => async (dir: string) => {
  for (const [rel, text] of Object.entries(tree)) {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await writeFile(path.join(dir, rel), text);
  }
};

const CASES: Case[] = [
  {
    // The reported bug: the worker's temp dir (0700) became /app's mode.
    name: 'copy-context-root-into-workdir',
    dockerfile: (b) => `FROM ${b}\nWORKDIR /app\nCOPY . .\nUSER app\nRUN cat /app/a && ls -ld /app\n`,
    context: async (d) => {
      await files({ a: 'hello\n' })(d);
      await chmod(d, 0o755);
    },
  },
  {
    name: 'context-root-setgid-group-writable',
    dockerfile: (b) => `FROM ${b}\nCOPY . /x/\nRUN stat -c '%a' /x\n`,
    context: async (d) => {
      await files({ 'f.txt': 'f\n' })(d);
      await chmod(d, 0o2775);
    },
  },
  {
    name: 'hardlinks-fifo-and-symlinks',
    dockerfile: (b) => `FROM ${b}\nCOPY . /h/\nRUN test "$(stat -c %i /h/a.txt)" = "$(stat -c %i /h/sub/b.txt)" && test -p /h/pipe\n`,
    context: async (d) => {
      await files({ 'a.txt': 'linked\n', 'c.txt': 'c\n' })(d);
      await mkdir(path.join(d, 'sub'));
      await link(path.join(d, 'a.txt'), path.join(d, 'sub/b.txt'));
      await sh('mkfifo', [path.join(d, 'pipe')]);
      await symlink('/etc/passwd', path.join(d, 'abs-link'));
      await symlink('c.txt', path.join(d, 'rel-link'));
      await symlink('does-not-exist', path.join(d, 'dangling'));
    },
  },
  {
    name: 'modes-special-bits-empty-dirs',
    dockerfile: (b) => `FROM ${b}\nCOPY . /m/\nCOPY --chmod=0640 private.txt /m2/\n`,
    context: async (d) => {
      await files({ 'private.txt': 'p\n', 'tool.sh': '#!/bin/sh\n', 'suid': 's\n', 'tight/inner.txt': 'i\n' })(d);
      await chmod(path.join(d, 'private.txt'), 0o600);
      await chmod(path.join(d, 'tool.sh'), 0o755);
      await chmod(path.join(d, 'suid'), 0o4755);
      await chmod(path.join(d, 'tight'), 0o711);
      await mkdir(path.join(d, 'empty/deeper'), { recursive: true });
      await chmod(path.join(d, 'empty'), 0o750);
    },
  },
  {
    name: 'dockerignore-with-reinclusion',
    dockerfile: (b) => `FROM ${b}\nCOPY . /d/\nRUN test ! -e /d/docs/drop.md && test -f /d/docs/keep.md && test ! -e /d/build\n`,
    context: async (d) => {
      await files({ '.dockerignore': 'docs\n!docs/keep.md\nbuild\n*.log\n', 'docs/keep.md': 'k\n', 'docs/drop.md': 'd\n', 'build/out.o': 'o\n', 'x.log': 'l\n', 'src/m.c': 'int main;\n' })(d);
      await chmod(path.join(d, 'docs'), 0o700);
    },
  },
  {
    // A bind mount of the context sees what was sent: the .dockerignore applies in both modes.
    name: 'bind-mount-of-the-context',
    dockerfile: (b) => `FROM ${b}\nRUN --mount=type=bind,target=/ctx ls -lR /ctx > /listing\n`,
    context: files({ '.dockerignore': 'secret.txt\n', 'secret.txt': 's\n', 'app/main.c': 'int main;\n' }),
  },
  {
    name: 'multistage-args-labels-target',
    dockerfile: (b) =>
      `ARG BASE=${b}\nFROM $BASE AS build\nARG FLAVOR=plain\nCOPY src/ /src/\nRUN mkdir -p /out && echo "$FLAVOR" > /out/flavor && cat /src/* > /out/all\nFROM ${b} AS final\nLABEL org.example.x=1\nCOPY --from=build /out /opt/out\nENV A=1 B="two words"\nCMD ["cat","/opt/out/flavor"]\nFROM final AS extra\nRUN echo extra > /extra\n`,
    context: files({ 'src/1.txt': 'one\n', 'src/2.txt': 'two\n' }),
    args: ['--build-arg', 'FLAVOR=spicy', '--target', 'final', '--label', 'built.by=parity'],
  },
  {
    name: 'add-local-archive',
    dockerfile: (b) => `FROM ${b}\nADD bundle.tar /srv/\nRUN ls -lR /srv\n`,
    context: async (d) => {
      await files({ 'payload/one.txt': '1\n', 'payload/two/three.txt': '3\n' })(d);
      await utimes(path.join(d, 'payload/one.txt'), OLD, OLD);
      await sh('tar', ['-C', d, '--owner=1234', '--group=99', '--numeric-owner', '-cf', path.join(d, 'bundle.tar'), 'payload']);
      await rm(path.join(d, 'payload'), { recursive: true });
    },
  },
  {
    name: 'failing-run',
    dockerfile: (b) => `FROM ${b}\nRUN echo about-to-fail; exit 3\n`,
    context: files({ f: 'f\n' }),
  },
  {
    name: 'dockerfile-error',
    dockerfile: (b) => `FROM ${b}\nCOPY --frobnicate a /b\n`,
    context: files({ a: 'a\n' }),
  },
];

describe('service parity: --server builds the image the embedded CLI builds', () => {
  let redis: TestRedis;
  let registry: TestRegistry;
  let svc: Service;
  let base: string;
  let tmp: string;
  let localRoot: string;

  beforeAll(async () => {
    [redis, registry] = await Promise.all([startRedis(), startRegistry()]);
    await pushBusyboxBase(registry.host);
    base = `${registry.host}/library/busybox:latest`;
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-parity-'));
    localRoot = path.join(tmp, 'local-root');
    svc = await startService({ redisUrl: redis.url, workers: 2, concurrency: 1 });
  });
  afterAll(async () => {
    await svc?.stop();
    if (localRoot) await cleanupRoots([localRoot]);
    await Promise.all([redis?.stop(), registry?.stop()]);
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  /** One build, locally or through the service: its image digest, or the error code it failed with. */
  async function build(mode: 'local' | 'server', name: string, dockerfile: string, context: string, args: readonly string[]): Promise<Outcome> {
    const meta = path.join(tmp, `${name}.${mode}.json`);
    const where = mode === 'local' ? ['--root', localRoot] : ['--server', svc.addr, '--token', TOKENS.alice];
    const r: CliResult = await runCli(['build', ...where, '--progress', 'plain', '-f', dockerfile, '-t', `${registry.host}/parity/${name}:${mode}`, '--metadata-file', meta, ...args, context], {
      env: { SOURCE_DATE_EPOCH: EPOCH },
    });
    const out = r.stdout + r.stderr;
    const m = JSON.parse(await readFile(meta, 'utf8').catch(() => '{}')) as { 'containerimage.digest'?: string; error?: { code: string } };
    if (r.code === 0) {
      expect(m['containerimage.digest'], `${mode} ${name} wrote no digest:\n${out}`).toMatch(/^sha256:[a-f0-9]{64}$/);
      return { digest: m['containerimage.digest']!, out };
    }
    expect(r.code, `${mode} ${name}:\n${out}`).toBe(1);
    return { error: m.error?.code ?? 'NO_METADATA', out };
  }

  async function both(name: string, dockerfile: string, context: string, args: readonly string[]): Promise<void> {
    const [local, server] = await Promise.all([build('local', name, dockerfile, context, args), build('server', name, dockerfile, context, args)]);
    const why = `${name}\n--- local:\n${local.out.slice(-1500)}\n--- server:\n${server.out.slice(-1500)}`;
    expect({ digest: server.digest, error: server.error }, why).toEqual({ digest: local.digest, error: local.error });
  }

  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (name, c) => {
    const dir = path.join(tmp, name);
    const ctx = path.join(dir, 'context');
    await mkdir(ctx, { recursive: true });
    await c.context(ctx);
    await age(ctx);
    const df = path.join(dir, 'Dockerfile');
    await writeFile(df, c.dockerfile(base));
    await both(name, df, ctx, c.args ?? []);
  });

  it.runIf(conformanceCases.length > 0).each(conformanceCases)('conformance case %s', async (name) => {
    const dir = path.join(tmp, `conf-${name}`);
    // stage.py lays out the context the way the suite's builders see it and prints the case's build arguments.
    const printArgs = `printf '%s\\0' {dockerfile} {context} {ref} {buildargs}`;
    const { stdout: cmd } = await sh('python3', [path.join(CONFORMANCE, 'lib/stage.py'), path.join(CONFORMANCE, 'cases', name), dir, 'unused', printArgs], {
      env: { ...process.env, CONF_REGISTRY: registry.host },
    });
    const { stdout } = await sh('bash', ['-c', cmd]);
    const [dockerfile, context, , ...args] = stdout.split('\0').slice(0, -1);
    await both(`conf-${name}`, dockerfile!, context!, args);
  });
});
