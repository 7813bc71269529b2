import { CodedError } from '../core/errors.js';
import { RegistryClient } from './client.js';
import { DockerConfigCredentials, staticCredentials } from './credentials.js';
import { DOCKER_HUB } from './reference.js';
/** `docker.io`, `https://index.docker.io/v1/`, `host:port` → the registry name references use. */
export function normalizeRegistry(input) {
    let r = input.trim().replace(/^https?:\/\//, '');
    r = r.split('/')[0] ?? r;
    if (!r)
        throw new CodedError('INVALID_ARGUMENT', 'registry name is empty');
    return r === 'index.docker.io' || r === 'registry-1.docker.io' ? DOCKER_HUB : r;
}
/**
 * Verify the credentials against the registry (Basic or a token request, as
 * the registry asks), then save them where docker login would: the configured
 * credential helper, else `auths` in config.json (mode 0600).
 */
export async function login(registry, username, password, opts = {}) {
    const name = normalizeRegistry(registry);
    if (!username || !password)
        throw new CodedError('INVALID_ARGUMENT', 'login needs a user name and a password');
    const client = new RegistryClient({
        credentials: staticCredentials({ [name]: { username, password } }),
        ...(opts.caFile ? { caFile: opts.caFile } : {}),
        ...(opts.insecureRegistries ? { insecureRegistries: opts.insecureRegistries } : {}),
        retries: 1,
    });
    try {
        await client.ping(name, undefined, opts.signal);
    }
    finally {
        await client.close();
    }
    await new DockerConfigCredentials(opts.configFile).store(name, { username, password });
}
/** Forget the credentials for a registry; false when there were none. */
export async function logout(registry, opts = {}) {
    return new DockerConfigCredentials(opts.configFile).erase(normalizeRegistry(registry));
}
//# sourceMappingURL=login.js.map