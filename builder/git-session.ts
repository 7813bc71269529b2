import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseGitUrl, type GitUrl } from '../core/git-url.js';
import type { GitRun } from './git-cli.js';
import type { GitAuth } from './solver/index.js';

/** BuildKit's secret names for git over http(s): a host-specific one wins over the general one, a header over a token. */
const AUTH_HEADER = 'GIT_AUTH_HEADER';
const AUTH_TOKEN = 'GIT_AUTH_TOKEN';

/** The ssh agent id git sources use, as BuildKit's (`--ssh default`). */
export const GIT_SSH_ID = 'default';

export interface GitSession extends GitRun, AsyncDisposable {
  /** The remote to hand git: the source's, or for git:// the checked address in place of the name. */
  readonly remote: string;
  /** The remote without any of that, for messages and a kept `.git`. */
  readonly shown: string;
  /** A fresh private directory for repositories of this session. */
  readonly dir: string;
  /** The address the remote's host was checked at (submodules on the same host use it too). */
  readonly address: { readonly address: string; readonly family: 4 | 6 };
}

/**
 * Everything git needs to reach one remote, and nothing else:
 *
 * - the connection pinned to the address the policy checked (no second DNS
 *   answer can redirect it): curl's resolve list for http(s), ssh's HostName
 *   for ssh, the address itself for git://;
 * - only that remote's transport allowed (GIT_ALLOW_PROTOCOL);
 * - credentials from the build's secrets, as an http header scoped to that
 *   origin and passed in the environment (never argv, which every local user
 *   can read); for ssh, the build's `default` agent and an ssh config that
 *   ignores this machine's ssh config, keys and known hosts (BuildKit does not
 *   check host keys of git remotes either).
 */
export async function openGitSession(remote: string, address: { address: string; family: 4 | 6 }, auth: GitAuth, tmpDir: string, signal: AbortSignal): Promise<GitSession> {
  const url = parseGitUrl(remote);
  const dir = await mkdtemp(path.join(tmpDir, 'git-'));
  const dispose = () => rm(dir, { recursive: true, force: true });
  try {
    const config: Array<[string, string]> = [];
    const env: Record<string, string> = { GIT_ALLOW_PROTOCOL: url.scheme };
    let pinned = remote;
    const host = address.family === 6 ? `[${address.address}]` : address.address;
    if (url.scheme === 'http' || url.scheme === 'https') {
      config.push(...curlResolve(url, address));
      const header = authHeader(auth.secrets, url.host);
      if (header !== undefined) config.push([`http.${origin(url)}/.extraheader`, `Authorization: ${header}`]);
    } else if (url.scheme === 'git') {
      pinned = remote.replace(/^git:\/\/[^/]+/i, `git://${host}${url.port !== undefined ? `:${url.port}` : ''}`);
    } else {
      const sshConfig = path.join(dir, 'ssh_config');
      await writeFile(sshConfig, sshConfigText(address.address), { mode: 0o600 });
      // git runs this through a shell: the path is quoted.
      env['GIT_SSH_COMMAND'] = `ssh -F '${sshConfig.replace(/'/g, `'\\''`)}'`;
      const agent = auth.ssh.get(GIT_SSH_ID);
      if (agent !== undefined) env['SSH_AUTH_SOCK'] = agent;
    }
    return { remote: pinned, shown: remote, dir, cwd: dir, env: withConfig(env, config), signal, address, [Symbol.asyncDispose]: dispose };
  } catch (err) {
    await dispose();
    throw err;
  }
}

/** `env` with more git config entries (GIT_CONFIG_COUNT/KEY_n/VALUE_n: the environment, never argv). */
export function withConfig(env: Readonly<Record<string, string>>, entries: ReadonlyArray<readonly [string, string]>): Record<string, string> {
  const out = { ...env };
  let n = Number(out['GIT_CONFIG_COUNT'] ?? 0);
  for (const [k, v] of entries) {
    out[`GIT_CONFIG_KEY_${n}`] = k;
    out[`GIT_CONFIG_VALUE_${n}`] = v;
    n++;
  }
  if (n > 0) out['GIT_CONFIG_COUNT'] = String(n);
  return out;
}

/** curl's `--resolve` entry that pins an http(s) host to the checked address (none when the URL names the address). */
export function curlResolve(url: Pick<GitUrl, 'scheme' | 'host' | 'port'>, address: { address: string; family: 4 | 6 }): Array<[string, string]> {
  if (url.host === address.address) return [];
  const port = url.port ?? (url.scheme === 'https' ? 443 : 80);
  return [['http.curloptResolve', `${url.host}:${port}:${address.family === 6 ? `[${address.address}]` : address.address}`]];
}

/** `Authorization` value from GIT_AUTH_HEADER[.host] or GIT_AUTH_TOKEN[.host] (a token goes as BuildKit sends it). */
function authHeader(secrets: ReadonlyMap<string, Buffer>, host: string): string | undefined {
  for (const [name, token] of [[`${AUTH_HEADER}.${host}`, false], [`${AUTH_TOKEN}.${host}`, true], [AUTH_HEADER, false], [AUTH_TOKEN, true]] as const) {
    const v = secrets.get(name);
    if (v === undefined) continue;
    return token ? `basic ${Buffer.from(`x-access-token:${v.toString('utf8')}`).toString('base64')}` : v.toString('utf8');
  }
  return undefined;
}

function origin(url: GitUrl): string {
  const host = url.host.includes(':') ? `[${url.host}]` : url.host;
  return `${url.scheme}://${host}${url.port !== undefined ? `:${url.port}` : ''}`;
}

/**
 * ssh for git: this file only (no ~/.ssh/config, /etc/ssh, default keys or
 * known hosts of the machine), the checked address, no prompts, no
 * forwarding, no shared connections, and a bound on silence.
 */
function sshConfigText(address: string): string {
  return [
    'Host *',
    `  HostName ${address}`,
    '  BatchMode yes',
    '  IdentityFile none',
    '  StrictHostKeyChecking no',
    '  UserKnownHostsFile /dev/null',
    '  GlobalKnownHostsFile /dev/null',
    '  UpdateHostKeys no',
    '  ForwardAgent no',
    '  ForwardX11 no',
    '  ClearAllForwardings yes',
    '  PermitLocalCommand no',
    '  ControlMaster no',
    '  ControlPath none',
    '  ProxyCommand none',
    '  ConnectTimeout 10',
    '  ServerAliveInterval 15',
    '  ServerAliveCountMax 4',
    '  LogLevel ERROR',
    '',
  ].join('\n');
}
