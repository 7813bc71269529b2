import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { readPushedImage, SecurityEnv, sh } from '../security/harness.js';

const exec = promisify(execFile);

/** Every file under dir (state roots, contexts) with its bytes. */
async function* files(dir: string): AsyncGenerator<[string, Buffer]> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* files(p);
    else if (e.isFile()) yield [p, await readFile(p)];
  }
}

/** The host's ssh-add and the shared libraries it loads, laid out as a rootfs fragment to COPY into the busybox base. */
async function sshAddRootfs(dest: string): Promise<void> {
  const { stdout } = await exec('ldd', ['/usr/bin/ssh-add']);
  const libs = [...stdout.matchAll(/(\/\S+) \(0x/g)].map((m) => m[1]!);
  for (const f of ['/usr/bin/ssh-add', ...libs]) {
    await mkdir(path.join(dest, path.dirname(f)), { recursive: true });
    await copyFile(f, path.join(dest, f));
  }
}

interface TestAgent {
  readonly socket: string;
  readonly keyFile: string;
  /** The private key's base64 body and the public key blob: neither may land anywhere. */
  readonly secrets: readonly string[];
  readonly comment: string;
  stop(): Promise<void>;
}

/** A real ssh-agent of the test's own, holding one fresh ed25519 key. */
async function startAgent(dir: string): Promise<TestAgent> {
  await mkdir(dir, { recursive: true });
  const keyFile = path.join(dir, 'id_test');
  const comment = `bl-test-key-${process.pid}`;
  await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', keyFile]);
  const socket = path.join(dir, 'agent.sock');
  const child: ChildProcess = spawn('ssh-agent', ['-D', '-a', socket], { stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
  await exec('ssh-add', ['-q', keyFile], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
  const priv = (await readFile(keyFile, 'utf8')).split('\n').filter((l) => l && !l.startsWith('-----')).join('');
  const pub = (await readFile(`${keyFile}.pub`, 'utf8')).split(' ')[1]!;
  return {
    socket,
    keyFile,
    comment,
    secrets: [priv.slice(0, 60), pub],
    stop: async () => {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('close', r));
    },
  };
}

describe('RUN --mount=type=ssh with a real ssh-agent', () => {
  let env: SecurityEnv;
  let agent: TestAgent;
  let ctx: string;

  beforeAll(async () => {
    env = await SecurityEnv.start();
    agent = await startAgent(path.join(env.tmp, 'agent'));
    ctx = await env.context({});
    await sshAddRootfs(path.join(ctx, 'rootfs'));
  });
  afterAll(async () => {
    await agent?.stop();
    await env?.stop();
  });

  it('ssh-add -l in the step lists the key; no layer, event, log, key or state file holds the socket path or the key', async () => {
    const { builder, root } = await env.builder();
    const ref = `${env.registry.host}/src/ssh:1`;
    try {
      const out = await env.build(
        builder,
        `FROM ${env.base}\nCOPY rootfs/ /\nRUN --mount=type=ssh echo "sock=$SSH_AUTH_SOCK" && ssh-add -l && echo listed > /done\nRUN --mount=type=ssh,id=other,target=/agent,uid=1000,mode=0600 test -S /agent && echo second > /second\n`,
        { context: ctx, ssh: new Map([['default', agent.socket], ['other', agent.socket]]), request: { outputs: [{ type: 'registry', refs: [ref] }] }, debugCache: true },
      );
      expect(out.error).toBeUndefined();
      expect(out.logs).toContain('sock=/run/buildkit/ssh_agent.0');
      expect(out.logs).toContain(agent.comment);
      const forbidden = [agent.socket, ...agent.secrets];
      for (const s of forbidden) expect(JSON.stringify(out.events), s).not.toContain(s);

      const img = await readPushedImage(ref);
      const runLayers = img.layers.slice(-2).flat();
      // The steps' own files and nothing else: no /run/buildkit, no /agent stub.
      expect(runLayers.map((e) => e.name.replace(/^\.?\//, '').replace(/\/$/, ''))).toEqual(['done', 'second']);
      for (const l of img.layers.flat()) for (const s of forbidden) expect(l.data.includes(s) || l.name.includes(s), `${l.name}: ${s}`).toBe(false);
      expect(img.configBytes.includes(agent.socket)).toBe(false);
      // SSH_AUTH_SOCK is the step's, not the image's.
      const config = JSON.parse(img.configBytes.toString()) as { config?: { Env?: string[] } };
      expect(config.config?.Env?.some((e) => e.startsWith('SSH_AUTH_SOCK'))).toBe(false);

      let scanned = 0;
      for await (const [p, bytes] of files(root)) {
        scanned++;
        for (const s of forbidden) expect(bytes.includes(s), `${p}: ${s}`).toBe(false);
      }
      expect(scanned).toBeGreaterThan(5);
    } finally {
      await builder.close();
    }
  });

  it('uid, gid and mode of the socket are the mount\'s: a step as another user can use it only when given it', async () => {
    const { builder } = await env.builder();
    try {
      const denied = await env.build(builder, `FROM ${env.base}\nCOPY rootfs/ /\nUSER 1000\nRUN --mount=type=ssh ssh-add -l\n`, { context: ctx, ssh: new Map([['default', agent.socket]]) });
      expect(denied.error?.code).toBe('EXEC_FAILED');
      const allowed = await env.build(builder, `FROM ${env.base}\nCOPY rootfs/ /\nUSER 1000\nRUN --mount=type=ssh,uid=1000 ssh-add -l\n`, { context: ctx, ssh: new Map([['default', agent.socket]]) });
      expect(allowed.error).toBeUndefined();
      expect(allowed.logs).toContain(agent.comment);
    } finally {
      await builder.close();
    }
  });

  it('a missing agent for a required mount fails before any step runs and names the id; an optional one is skipped', async () => {
    const { builder } = await env.builder();
    try {
      const out = await env.build(builder, `FROM ${env.base}\nRUN echo first-step-ran\nRUN --mount=type=ssh,id=deploy,required=true echo ran\n`);
      expect(out.error?.code).toBe('NOT_FOUND');
      expect(out.error?.message).toContain('"deploy"');
      expect(out.error?.message).toContain('--ssh deploy=');
      expect(out.error?.range?.startLine).toBe(3);
      expect(out.logs).not.toContain('first-step-ran');
      // A git source over ssh uses the default agent, as BuildKit's does: without one it fails the same way, before fetching.
      const git = await env.build(builder, `FROM ${env.base}\nRUN echo first-step-ran\nADD git@git.example.invalid:o/r.git /r\n`);
      expect(git.error?.code).toBe('NOT_FOUND');
      expect(git.error?.message).toContain('"default"');
      expect(git.error?.range?.startLine).toBe(3);
      expect(git.logs).not.toContain('first-step-ran');
      const optional = await env.build(builder, `FROM ${env.base}\nRUN --mount=type=ssh test ! -e "$SSH_AUTH_SOCK" && echo no-agent\n`);
      expect(optional.error).toBeUndefined();
      expect(optional.logs).toContain('no-agent');
    } finally {
      await builder.close();
    }
  });

  it('the CLI: --ssh default (from $SSH_AUTH_SOCK) and --ssh ID=KEYFILE (an agent of its own, stopped after)', async () => {
    const root = path.join(env.tmp, 'cli-root');
    const df = path.join(ctx, 'Dockerfile.ssh');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(df, `FROM ${env.base}\nCOPY rootfs/ /\nRUN --mount=type=ssh,id=k ssh-add -l\n`);
    const viaEnv = await runCli(['build', '--root', root, '--progress', 'plain', '--no-cache', '-f', df, '--ssh', 'k', ctx], { env: { SSH_AUTH_SOCK: agent.socket } });
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    expect(viaEnv.stderr + viaEnv.stdout).toContain(agent.comment);

    const viaKey = await runCli(['build', '--root', root, '--progress', 'plain', '--no-cache', '-f', df, '--ssh', `k=${agent.keyFile}`, ctx], { env: { SSH_AUTH_SOCK: '' } });
    expect(viaKey.code, viaKey.stderr).toBe(0);
    expect(viaKey.stderr + viaKey.stdout).toContain(agent.comment);
    const output = viaKey.stderr + viaKey.stdout;
    for (const s of [agent.keyFile, ...agent.secrets]) expect(output).not.toContain(s);
    // The agent it started is gone with the build.
    const { stdout } = await sh('ps', ['-eo', 'args']);
    expect(stdout).not.toMatch(/ssh-agent -D -a \S*buildlite-ssh-/);
  });

  it('the CLI refuses --ssh for a build service, and a missing SSH_AUTH_SOCK, as usage errors', async () => {
    const df = path.join(ctx, 'Dockerfile.ssh');
    const viaServer = await runCli(['build', '--server', '127.0.0.1:1', '-f', df, '--ssh', `default=${agent.socket}`, ctx]);
    expect(viaServer.code).toBe(2);
    expect(viaServer.stderr).toMatch(/--ssh forwards an ssh agent of this machine, which a build service cannot reach/);
    const noAgent = await runCli(['build', '-f', df, '--ssh', 'default', ctx], { env: { SSH_AUTH_SOCK: '' } });
    expect(noAgent.code).toBe(2);
    expect(noAgent.stderr).toMatch(/SSH_AUTH_SOCK is not set/);
  });
});
