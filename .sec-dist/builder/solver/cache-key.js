import { digestJson } from '../../core/digest.js';
/**
 * Proxy variables change where bytes come from, not what they are; BuildKit
 * drops them from keys too, so a CI runner behind a proxy shares cache with
 * a laptop that has none.
 */
const PROXY_ENV = new Set([
    'HTTP_PROXY', 'HTTPS_PROXY', 'FTP_PROXY', 'NO_PROXY', 'ALL_PROXY',
    'http_proxy', 'https_proxy', 'ftp_proxy', 'no_proxy', 'all_proxy',
]);
/**
 * The part of a definition that decides the output. Each dropped field and why:
 * - exec env proxy variables: see PROXY_ENV;
 * - cache mount `id`/`sharing`: they name storage, whose content is by definition not part of the output;
 * - secret mount values are never in a def; only the id and target stay (changing the target may change the output).
 */
export function scrub(def) {
    if (def.kind !== 'exec')
        return def;
    return scrubExec(def);
}
function scrubExec(def) {
    return {
        ...def,
        env: def.env.filter((kv) => !PROXY_ENV.has(kv.slice(0, kv.indexOf('=') >>> 0))),
        mounts: def.mounts.map(scrubMount),
    };
}
function scrubMount(m) {
    if (m.type !== 'cache')
        return m;
    const { id: _id, sharing: _sharing, ...rest } = m;
    return rest;
}
const KEY_TAG = 'buildlite.cachekey.v1';
export function cacheKey(def, inputKeys, content) {
    const preimage = { def: scrub(def), inputs: inputKeys, content };
    return { key: digestJson(KEY_TAG, preimage), preimage };
}
//# sourceMappingURL=cache-key.js.map