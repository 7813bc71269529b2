import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerConfigCredentials, RegistryClient } from '../../registry-client/index.js';
import { runCli } from '../helpers/cli.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startTokenServer, type TokenServer } from '../registry/token-server.js';

const PASSWORD = 'carol-very-secret-pw-77';

describe('a build pushes to a token-auth registry with only what buildlite login wrote', () => {
  let tokens: TokenServer;
  let reg: TestRegistry;
  let tmp: string;
  let dockerConfig: string;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-login-'));
    tokens = await startTokenServer(tmp, { carol: PASSWORD }, { carol: { 'team/app': ['pull', 'push'] } });
    reg = await startRegistry({ tokenAuth: tokens });
    dockerConfig = path.join(tmp, 'docker');
  });
  afterAll(async () => {
    await reg?.stop();
    await tokens?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('login writes config.json, build --push uses it, logout removes it; the password is never printed', async () => {
    const env = { DOCKER_CONFIG: dockerConfig };
    const wrong = await runCli(['login', '-u', 'carol', '--password-stdin', reg.host], { env, input: 'not-the-password\n' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr + wrong.stdout).not.toContain('not-the-password');

    const login = await runCli(['login', '-u', 'carol', '--password-stdin', reg.host], { env, input: `${PASSWORD}\n` });
    expect(login.stderr).toBe('');
    expect(login.code).toBe(0);
    const configFile = path.join(dockerConfig, 'config.json');
    expect((await stat(configFile)).mode & 0o777).toBe(0o600);
    expect(await readFile(configFile, 'utf8')).not.toContain(PASSWORD); // stored as Docker does: base64 auth

    const ctx = path.join(tmp, 'ctx');
    await rm(ctx, { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(ctx, { recursive: true }));
    await writeFile(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY hello.txt /hello.txt\n');
    await writeFile(path.join(ctx, 'hello.txt'), 'hello, token registry\n');
    const ref = `${reg.host}/team/app:v1`;
    const build = await runCli(['build', '--root', path.join(tmp, 'state'), '--progress', 'plain', '-t', ref, '--push', ctx], { env });
    const out = build.stdout + build.stderr;
    expect(out).not.toContain(PASSWORD);
    expect(build.code).toBe(0);
    expect(tokens.requests.some((r) => r.user === 'carol' && r.scopes.includes('repository:team/app:pull,push'))).toBe(true);

    // Read back with the same credentials file, independently of the CLI.
    await using client = new RegistryClient({ credentials: new DockerConfigCredentials(configFile) });
    const resolved = await client.resolve(ref);
    expect(resolved.manifestDigest).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(out).toContain(resolved.manifestDigest);

    const logout = await runCli(['logout', reg.host], { env });
    expect(logout.code).toBe(0);
    expect(await readFile(configFile, 'utf8')).not.toContain(reg.host);
    const again = await runCli(['build', '--root', path.join(tmp, 'state'), '--progress', 'plain', '--no-cache', '-t', `${reg.host}/team/app:v2`, '--push', ctx], { env });
    expect(again.code).toBe(1);
    expect(again.stderr + again.stdout).toMatch(/401|unauthori|login/i);
  });
});
