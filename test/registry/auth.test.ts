import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalContentStore } from '../../cache/index.js';
import { DockerConfigCredentials, login, logout, RegistryClient, RegistryError, staticCredentials } from '../../registry-client/index.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeTestImage } from './image-fixture.js';
import { startTokenServer, type TokenServer } from './token-server.js';

const USER = 'builder';
const PASSWORD = 'hunter2-Sup3rSecret';

async function errorOf(p: Promise<unknown>): Promise<RegistryError> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  expect(e).toBeInstanceOf(RegistryError);
  return e as RegistryError;
}

function expectNoSecret(err: Error, ...secrets: string[]) {
  const text = `${err.message} ${JSON.stringify((err as RegistryError).toWire())} ${String(err.stack)}`;
  for (const s of secrets) {
    expect(text).not.toContain(s);
    expect(text).not.toContain(Buffer.from(`${USER}:${s}`).toString('base64'));
  }
}

describe('Basic auth over TLS (htpasswd, test CA)', () => {
  let reg: TestRegistry;
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'buildlite-auth-'));
    reg = await startRegistry({ tls: true, htpasswd: { user: USER, password: PASSWORD } });
  });
  afterAll(async () => {
    await reg?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  it('pushes and pulls with the right password', async () => {
    await using client = new RegistryClient({ caFile: reg.caFile!, credentials: staticCredentials({ [reg.host]: { username: USER, password: PASSWORD } }) });
    const store = new LocalContentStore(path.join(tmp, 's1'));
    const img = await makeTestImage(store);
    expect(await client.pushImage(`${reg.host}/basic/app:1`, img, store)).toBe(img.manifestDigest);
    const r = await client.resolve(`${reg.host}/basic/app:1`);
    expect(r.manifestDigest).toBe(img.manifestDigest);
  });

  it('a wrong password gives UNAUTHENTICATED without the secret', async () => {
    const wrong = 'wrong-Pa55word-xyz';
    await using client = new RegistryClient({ caFile: reg.caFile!, credentials: staticCredentials({ [reg.host]: { username: USER, password: wrong } }) });
    const err = await errorOf(client.resolve(`${reg.host}/basic/app:1`));
    expect(err.code).toBe('UNAUTHENTICATED');
    expect(err.status).toBe(401);
    expect(err.message).toMatch(/401/);
    expectNoSecret(err, wrong, PASSWORD);
  });

  it('no credentials: UNAUTHENTICATED with a login hint', async () => {
    await using client = new RegistryClient({ caFile: reg.caFile!, credentials: staticCredentials({}) });
    const err = await errorOf(client.resolve(`${reg.host}/basic/app:1`));
    expect(err.code).toBe('UNAUTHENTICATED');
    expect(err.message).toContain(`buildlite login ${reg.host}`);
  });

  it('login verifies, writes config.json (0600) that pulls work with; logout removes it', async () => {
    const configFile = path.join(tmp, 'docker', 'config.json');
    const bad = await errorOf(login(reg.host, USER, 'nope-nope', { configFile, caFile: reg.caFile! }));
    expect(bad.code).toBe('UNAUTHENTICATED');
    await expect(readFile(configFile)).rejects.toThrow(/ENOENT/);

    await login(reg.host, USER, PASSWORD, { configFile, caFile: reg.caFile! });
    const cfg = JSON.parse(await readFile(configFile, 'utf8'));
    expect(Buffer.from(cfg.auths[reg.host].auth, 'base64').toString()).toBe(`${USER}:${PASSWORD}`);
    const { stat } = await import('node:fs/promises');
    expect((await stat(configFile)).mode & 0o777).toBe(0o600);

    await using client = new RegistryClient({ caFile: reg.caFile!, credentials: new DockerConfigCredentials(configFile) });
    expect((await client.resolve(`${reg.host}/basic/app:1`)).mediaType).toBe('application/vnd.oci.image.manifest.v1+json');

    expect(await logout(reg.host, { configFile })).toBe(true);
    expect(JSON.parse(await readFile(configFile, 'utf8')).auths[reg.host]).toBeUndefined();
  });

  it('credential helper protocol: login stores through it, pulls read through it, secrets only on stdin', async () => {
    const bin = path.join(tmp, 'bin');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(bin, { recursive: true });
    const script = path.join(bin, 'docker-credential-test');
    await writeFile(
      script,
      `#!/bin/sh
d="$(dirname "$0")"
echo "$@" >> "$d/argv.log"
env >> "$d/env.log"
case "$1" in
  get) read -r url; echo "$url" >> "$d/urls.log"; if [ -f "$d/store.json" ]; then cat "$d/store.json"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  store) cat > "$d/store.json" ;;
  erase) read -r url; rm -f "$d/store.json" ;;
esac
`,
    );
    await chmod(script, 0o755);
    const configFile = path.join(tmp, 'helper', 'config.json');
    await mkdir(path.dirname(configFile), { recursive: true });
    await writeFile(configFile, JSON.stringify({ credHelpers: { [reg.host]: 'test' } }));
    const oldPath = process.env.PATH;
    process.env.PATH = `${bin}:${oldPath}`;
    try {
      const creds = new DockerConfigCredentials(configFile);
      expect(await creds.get(reg.host)).toBeUndefined();
      await login(reg.host, USER, PASSWORD, { configFile, caFile: reg.caFile! });
      expect(JSON.parse(await readFile(path.join(bin, 'store.json'), 'utf8'))).toEqual({ ServerURL: reg.host, Username: USER, Secret: PASSWORD });
      // config.json never holds the secret when a helper is configured.
      expect(await readFile(configFile, 'utf8')).not.toContain(Buffer.from(`${USER}:${PASSWORD}`).toString('base64'));
      await using client = new RegistryClient({ caFile: reg.caFile!, credentials: creds });
      expect((await client.resolve(`${reg.host}/basic/app:1`)).manifestDigest).toMatch(/^sha256:/);
      expect(await readFile(path.join(bin, 'urls.log'), 'utf8')).toContain(reg.host);
      const argv = await readFile(path.join(bin, 'argv.log'), 'utf8');
      const env = await readFile(path.join(bin, 'env.log'), 'utf8');
      expect(argv.trim().split('\n').every((l) => ['get', 'store', 'erase'].includes(l))).toBe(true);
      expect(argv + env).not.toContain(PASSWORD);
      expect(await logout(reg.host, { configFile })).toBe(true);
      expect(await creds.get(reg.host)).toBeUndefined();
    } finally {
      process.env.PATH = oldPath;
    }
  });
});

describe('Bearer token auth (auth.token, JWT signed by a test token server)', () => {
  let reg: TestRegistry;
  let tokens: TokenServer;
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'buildlite-token-'));
    tokens = await startTokenServer(
      tmp,
      { alice: 'alice-pw-123', bob: 'bob-pw-456' },
      { alice: { 'tok/app': ['pull', 'push'], 'tok/other': ['pull', 'push'] }, bob: { 'tok/app': ['pull'] } },
      { 'refresh-abc-123': 'alice' },
    );
    reg = await startRegistry({ tokenAuth: tokens });
  });
  afterAll(async () => {
    await reg?.stop();
    await tokens?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  it('push and pull with tokens for the right scopes, cached', async () => {
    await using client = new RegistryClient({ credentials: staticCredentials({ [reg.host]: { username: 'alice', password: 'alice-pw-123' } }) });
    const store = new LocalContentStore(path.join(tmp, 's1'));
    const img = await makeTestImage(store, { layers: 3 });
    const before = tokens.requests.length;
    expect(await client.pushImage(`${reg.host}/tok/app:1`, img, store)).toBe(img.manifestDigest);
    const pushReqs = tokens.requests.slice(before);
    expect(pushReqs.some((r) => r.scopes.includes('repository:tok/app:pull,push') && r.user === 'alice')).toBe(true);
    // One token serves every blob of the push.
    expect(pushReqs.length).toBeLessThanOrEqual(2);
    const dst = new LocalContentStore(path.join(tmp, 'd1'));
    const pulled = await client.pullImage(`${reg.host}/tok/app:1`, dst);
    expect(pulled.manifestDigest).toBe(img.manifestDigest);
    // Cross-repo mount asks for pull on the source too.
    expect(await client.pushBlob(`${reg.host}/tok/other:1`, img.layers[0]!, store)).toBe('mounted');
    expect(tokens.requests.some((r) => r.scopes.includes('repository:tok/app:pull') && r.scopes.includes('repository:tok/other:pull,push'))).toBe(true);
  });

  it('insufficient scope: pull works, push is PERMISSION_DENIED', async () => {
    await using client = new RegistryClient({ credentials: staticCredentials({ [reg.host]: { username: 'bob', password: 'bob-pw-456' } }) });
    const r = await client.resolve(`${reg.host}/tok/app:1`);
    expect(r.manifestDigest).toMatch(/^sha256:/);
    const store = new LocalContentStore(path.join(tmp, 's2'));
    const img = await makeTestImage(store, { layers: 1 });
    const err = await errorOf(client.pushImage(`${reg.host}/tok/app:2`, img, store));
    expect(err.code).toBe('PERMISSION_DENIED');
    expectNoSecret(err, 'bob-pw-456');
  });

  it('wrong password at the token server: UNAUTHENTICATED, no secret', async () => {
    await using client = new RegistryClient({ credentials: staticCredentials({ [reg.host]: { username: 'alice', password: 'not-alice-pw' } }) });
    const err = await errorOf(client.resolve(`${reg.host}/tok/app:1`));
    expect(err.code).toBe('UNAUTHENTICATED');
    expectNoSecret(err, 'not-alice-pw');
  });

  it('an identity token from config.json goes through the OAuth2 refresh grant', async () => {
    const configFile = path.join(tmp, 'idtok', 'config.json');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(path.dirname(configFile), { recursive: true });
    await writeFile(configFile, JSON.stringify({ auths: { [reg.host]: { identitytoken: 'refresh-abc-123' } } }));
    await using client = new RegistryClient({ credentials: new DockerConfigCredentials(configFile) });
    const before = tokens.requests.length;
    expect((await client.resolve(`${reg.host}/tok/app:1`)).manifestDigest).toMatch(/^sha256:/);
    expect(tokens.requests.slice(before).some((r) => r.via === 'refresh' && r.user === 'alice')).toBe(true);
  });

  it('a build-style push with only a config.json written by login', async () => {
    const configFile = path.join(tmp, 'login', 'config.json');
    await login(reg.host, 'alice', 'alice-pw-123', { configFile });
    await using client = new RegistryClient({ credentials: new DockerConfigCredentials(configFile) });
    const store = new LocalContentStore(path.join(tmp, 's3'));
    const img = await makeTestImage(store, { layers: 1 });
    expect(await client.pushImage(`${reg.host}/tok/app:login`, img, store)).toBe(img.manifestDigest);
  });
});
