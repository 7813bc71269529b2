import { DEFAULT_PATH } from '../../core/oci.js';
export function cloneConfig(c) {
    return structuredClone(c);
}
/** Proxy variables: passed to RUN without an ARG, never written to history (BuildKit's defaults). */
export const PROXY_ARGS = new Set([
    'HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy',
]);
export function envMap(env) {
    const m = new Map();
    for (const kv of env ?? []) {
        const i = kv.indexOf('=');
        if (i < 0)
            m.set(kv, '');
        else
            m.set(kv.slice(0, i), kv.slice(i + 1));
    }
    return m;
}
/** ENV wins over ARG of the same name (Docker's rule). */
export function stageLookup(st) {
    const env = envMap(st.config.Env);
    return (n) => env.get(n) ?? st.args.get(n);
}
/** Replace in place when the key exists (Docker keeps the order), else append. */
export function setEnv(config, key, value) {
    const env = config.Env ? [...config.Env] : [];
    const i = env.findIndex((kv) => kv === key || kv.startsWith(`${key}=`));
    if (i >= 0)
        env[i] = `${key}=${value}`;
    else
        env.push(`${key}=${value}`);
    config.Env = env;
}
/** The environment a RUN sees: image env (PATH defaulted), then build args in scope, then proxy args. */
export function runEnv(st, buildArgs) {
    const env = [...(st.config.Env ?? [])];
    const keys = envMap(env);
    if (!keys.has('PATH')) {
        env.push(`PATH=${DEFAULT_PATH}`);
        keys.set('PATH', DEFAULT_PATH);
    }
    for (const [k, v] of st.args) {
        if (v === undefined || keys.has(k))
            continue;
        env.push(`${k}=${v}`);
        keys.set(k, v);
    }
    for (const [k, v] of buildArgs) {
        if (PROXY_ARGS.has(k) && !keys.has(k))
            env.push(`${k}=${v}`);
    }
    return env;
}
export function stepName(st, original) {
    st.step++;
    const text = original.length > 200 ? `${original.slice(0, 200)}...` : original;
    return `[${st.label} ${st.step}/${st.steps}] ${text.replace(/\s*\n[\s\S]*$/, '')}`;
}
/** Adds a vertex and its side-map entries. */
export function addVertex(ctx, st, def, inputs, name, range) {
    const d = ctx.graph.add(def, inputs, { name, stage: st.label, range });
    if (!ctx.stageOf.has(d))
        ctx.stageOf.set(d, st.label);
    return d;
}
export function pushHistory(st, created_by, vertex) {
    st.history.push(vertex ? { created_by, vertex } : { created_by, empty_layer: true });
}
//# sourceMappingURL=state.js.map