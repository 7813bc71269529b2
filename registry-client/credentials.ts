import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BuildliteError, type ErrorCode } from '../core/errors.js';
import { builtin } from '../core/lazy-builtins.js';
import { readAllBounded } from '../core/streams.js';
import { DOCKER_HUB } from './reference.js';

/**
 * Credentials for one registry. `identityToken` is an OAuth2 refresh token
 * (docker's `identitytoken`); when present it is used instead of the password.
 * Values of this type are never logged, printed or put into errors.
 */
export interface Credential {
  readonly username?: string;
  readonly password?: string;
  readonly identityToken?: string;
}

/** Where credentials come from; `registry` is a reference's registry name, e.g. `docker.io` or `127.0.0.1:5000`. */
export interface CredentialSource {
  get(registry: string): Promise<Credential | undefined>;
}

export class CredentialError extends BuildliteError {
  readonly code: ErrorCode = 'UNAUTHENTICATED';
}

/** Fixed credentials by registry name (tests, and callers with secrets from elsewhere). */
export function staticCredentials(byRegistry: Readonly<Record<string, Credential>>): CredentialSource {
  return { get: async (registry) => byRegistry[registry] };
}

/** Docker Hub's historical key in config.json. */
const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';
const HELPER_TIMEOUT_MS = 30_000; // helpers may prompt a keychain unlock; do not hang forever
const MAX_HELPER_OUTPUT = 64 * 1024;
const MAX_CONFIG_SIZE = 4 << 20;

interface DockerConfigFile {
  auths?: Record<string, { auth?: string; identitytoken?: string; username?: string; password?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [k: string]: unknown;
}

export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG || path.join(os.homedir(), '.docker');
  return path.join(dir, 'config.json');
}

/** The key config.json uses for a registry. */
function configKey(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_KEY : registry;
}

/** Normalise an `auths` key (`https://host/v1/`, `host`) to a registry name. */
function keyToRegistry(key: string): string {
  let k = key.replace(/^https?:\/\//, '');
  k = k.split('/')[0] ?? k;
  return k === 'index.docker.io' || k === 'registry-1.docker.io' ? DOCKER_HUB : k;
}

async function readConfig(file: string): Promise<DockerConfigFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CredentialError(`cannot read the docker config ${file}`, { cause: err });
  }
  if (text.length > MAX_CONFIG_SIZE) throw new CredentialError(`docker config ${file} is too large`);
  try {
    const parsed = JSON.parse(text) as unknown;
    return parsed && typeof parsed === 'object' ? (parsed as DockerConfigFile) : {};
  } catch {
    // The file holds secrets: say where it is, never quote it.
    throw new CredentialError(`docker config ${file} is not valid JSON`);
  }
}

function helperFor(cfg: DockerConfigFile, registry: string): string | undefined {
  const helpers = cfg.credHelpers ?? {};
  for (const [k, v] of Object.entries(helpers)) if (keyToRegistry(k) === registry && v) return v;
  return cfg.credsStore || undefined;
}

/** Credentials from `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`): credHelpers, credsStore, auths. */
export class DockerConfigCredentials implements CredentialSource {
  readonly file: string;
  constructor(file?: string) {
    this.file = file ?? dockerConfigPath();
  }

  async get(registry: string): Promise<Credential | undefined> {
    const cfg = await readConfig(this.file);
    const helper = helperFor(cfg, registry);
    if (helper) {
      const fromHelper = await helperGet(helper, helperServerUrl(registry));
      if (fromHelper) return fromHelper;
    }
    for (const [key, entry] of Object.entries(cfg.auths ?? {})) {
      if (keyToRegistry(key) !== registry || !entry) continue;
      const out: { username?: string; password?: string; identityToken?: string } = {};
      if (entry.auth) {
        const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon < 0) throw new CredentialError(`docker config ${this.file}: the auth entry for ${registry} is malformed`);
        out.username = decoded.slice(0, colon);
        out.password = decoded.slice(colon + 1);
      } else if (entry.username !== undefined && entry.password !== undefined) {
        out.username = entry.username;
        out.password = entry.password;
      }
      if (entry.identitytoken) out.identityToken = entry.identitytoken;
      if (out.username !== undefined || out.identityToken) return out;
    }
    return undefined;
  }

  /** Save credentials the way docker login does: into the helper when one is configured, else into `auths`. */
  async store(registry: string, cred: { username: string; password: string }): Promise<void> {
    const cfg = await readConfig(this.file);
    const helper = helperFor(cfg, registry);
    if (helper) {
      await runHelper(helper, 'store', JSON.stringify({ ServerURL: helperServerUrl(registry), Username: cred.username, Secret: cred.password }));
      // A stale inline entry would shadow nothing but still hold a secret on disk.
      if (cfg.auths?.[configKey(registry)]) {
        delete cfg.auths[configKey(registry)];
        await writeConfig(this.file, cfg);
      }
      return;
    }
    cfg.auths ??= {};
    cfg.auths[configKey(registry)] = { auth: Buffer.from(`${cred.username}:${cred.password}`).toString('base64') };
    await writeConfig(this.file, cfg);
  }

  /** Forget credentials (docker logout); true when something was removed. */
  async erase(registry: string): Promise<boolean> {
    const cfg = await readConfig(this.file);
    let removed = false;
    const helper = helperFor(cfg, registry);
    if (helper) {
      try {
        await runHelper(helper, 'erase', helperServerUrl(registry));
        removed = true;
      } catch {
        // "not found" from the helper: nothing to erase there.
      }
    }
    for (const key of Object.keys(cfg.auths ?? {})) {
      if (keyToRegistry(key) === registry) {
        delete cfg.auths![key];
        removed = true;
      }
    }
    if (removed) await writeConfig(this.file, cfg);
    return removed;
  }
}

function helperServerUrl(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_KEY : registry;
}

/** Write atomically, owner-only: the file holds secrets. */
async function writeConfig(file: string, cfg: DockerConfigFile): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, `${JSON.stringify(cfg, null, '\t')}\n`, { mode: 0o600 });
    await rename(tmp, file);
  } finally {
    await rm(tmp, { force: true });
  }
}

async function helperGet(helper: string, serverUrl: string): Promise<Credential | undefined> {
  let out: string;
  try {
    out = await runHelper(helper, 'get', serverUrl);
  } catch (err) {
    if (err instanceof HelperNotFound) return undefined;
    throw err;
  }
  let parsed: { Username?: unknown; Secret?: unknown };
  try {
    parsed = JSON.parse(out) as typeof parsed;
  } catch {
    throw new CredentialError(`credential helper docker-credential-${helper} returned malformed output`);
  }
  if (typeof parsed.Secret !== 'string' || !parsed.Secret) return undefined;
  // Docker's convention: the user name `<token>` marks an identity token.
  if (parsed.Username === '<token>') return { identityToken: parsed.Secret };
  return { username: typeof parsed.Username === 'string' ? parsed.Username : '', password: parsed.Secret };
}

class HelperNotFound extends Error {}

/**
 * Run `docker-credential-<name> <action>` with the payload on stdin. Secrets go
 * through stdin/stdout only, never argv or env; the helper's stderr and stdout
 * are not echoed into errors (they may contain the secret).
 */
function runHelper(name: string, action: 'get' | 'store' | 'erase', stdin: string): Promise<string> {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) return Promise.reject(new CredentialError(`invalid credential helper name ${JSON.stringify(name.slice(0, 60))}`));
  const bin = `docker-credential-${name}`;
  return new Promise((resolve, reject) => {
    const child = builtin('node:child_process').spawn(bin, [action], { stdio: ['pipe', 'pipe', 'pipe'], timeout: HELPER_TIMEOUT_MS });
    const out = readAllBounded(child.stdout, MAX_HELPER_OUTPUT, `${bin} output`);
    const err = readAllBounded(child.stderr, MAX_HELPER_OUTPUT, `${bin} stderr`);
    out.catch(() => undefined);
    err.catch(() => undefined);
    child.on('error', (e) => reject(new CredentialError(`cannot run credential helper ${bin}`, { cause: e })));
    child.on('close', (code) => {
      void Promise.all([out, err]).then(
        ([o, e]) => {
          const text = o.toString('utf8');
          if (code === 0) return resolve(text);
          // Helpers report "credentials not found" on stdout (docker-credential-helpers) or stderr.
          if (/credentials not found/i.test(text) || /credentials not found/i.test(e.toString('utf8'))) {
            return reject(new HelperNotFound());
          }
          reject(new CredentialError(`credential helper ${bin} ${action} failed with exit code ${code}`));
        },
        (e) => reject(new CredentialError(`credential helper ${bin} ${action} failed`, { cause: e })),
      );
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin);
  });
}
