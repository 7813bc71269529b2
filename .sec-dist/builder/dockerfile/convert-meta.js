import { posix } from 'node:path';
import { DockerfileError } from './errors.js';
import { processWord, processWords } from './lexer.js';
import { addVertex, PROXY_ARGS, pushHistory, setEnv, stageLookup, stepName, } from './state.js';
import { checkSignal, parsePortSpec, parseUserSpec } from './values.js';
/** Instructions that change the image config (and WORKDIR's mkdir). */
export const DEFAULT_SHELL = ['/bin/sh', '-c'];
export function shellOf(st) {
    return st.config.Shell && st.config.Shell.length > 0 ? [...st.config.Shell] : [...DEFAULT_SHELL];
}
export function commandArgs(st, cmd) {
    return cmd.json ? [...cmd.args] : [...shellOf(st), cmd.text];
}
/** Go's `%q` of a []string, as BuildKit writes CMD/ENTRYPOINT history. */
function quoteList(args) {
    return `[${args.map((a) => JSON.stringify(a)).join(' ')}]`;
}
export function dispatchEnvLabel(st, ins, ctx) {
    const lookup = stageLookup(st);
    const opts = { escape: ctx.escape };
    // Every pair is expanded against the scope before the instruction: `ENV A=1 B=$A` sees the old A.
    const pairs = ins.pairs.map((p) => ({ key: processWord(p.key, lookup, opts), value: processWord(p.value, lookup, opts) }));
    for (const { key, value } of pairs) {
        if (key === '')
            throw new DockerfileError(`${ins.kind} names can not be blank`);
        if (ins.kind === 'ENV')
            setEnv(st.config, key, value);
        else
            st.config.Labels = { ...(st.config.Labels ?? {}), [key]: value };
    }
    const text = pairs.map((p) => `${p.key}=${p.value}`);
    pushHistory(st, `${ins.kind} ${text.join(' ')}`);
}
export function dispatchArg(st, ins, ctx, src) {
    const shown = [];
    for (const a of ins.args) {
        const lookup = stageLookup(st);
        let value;
        if (src.buildArgs.has(a.key))
            value = src.buildArgs.get(a.key);
        else if (a.value !== undefined)
            value = processWord(a.value, lookup, { escape: ctx.escape });
        else if (src.globals.has(a.key))
            value = src.globals.get(a.key);
        else
            value = src.predefined.get(a.key);
        st.args.set(a.key, value);
        ctx.consumedArgs.add(a.key);
        if (!PROXY_ARGS.has(a.key))
            shown.push(value === undefined ? a.key : `${a.key}=${value}`);
    }
    if (shown.length > 0)
        pushHistory(st, `ARG ${shown.join(' ')}`);
}
export function dispatchExpose(st, ins, ctx) {
    const words = processWords(ins.text, stageLookup(st), { escape: ctx.escape });
    const ports = words.flatMap((w) => parsePortSpec(w));
    const exposed = { ...(st.config.ExposedPorts ?? {}) };
    for (const p of ports)
        exposed[p] = {};
    st.config.ExposedPorts = exposed;
    pushHistory(st, `EXPOSE ${ports.join(' ')}`);
}
export function dispatchString(st, ins, ctx) {
    const lookup = stageLookup(st);
    switch (ins.kind) {
        case 'MAINTAINER':
            st.author = ins.value;
            pushHistory(st, `MAINTAINER ${ins.value}`);
            return;
        case 'USER': {
            const user = processWord(ins.value, lookup, { escape: ctx.escape });
            parseUserSpec(user, 'USER');
            st.config.User = user;
            pushHistory(st, `USER ${user}`);
            return;
        }
        case 'STOPSIGNAL': {
            const sig = checkSignal(processWord(ins.value, lookup, { escape: ctx.escape }));
            st.config.StopSignal = sig;
            pushHistory(st, `STOPSIGNAL ${sig}`);
            return;
        }
        case 'WORKDIR':
            dispatchWorkdir(st, ins, ctx, lookup);
            return;
    }
}
/** The absolute, cleaned directory `p` names when the current one is `cwd`. */
export function resolveWorkdir(cwd, p) {
    return posix.resolve('/', cwd || '/', p);
}
function dispatchWorkdir(st, ins, ctx, lookup) {
    const raw = processWord(ins.value, lookup, { escape: ctx.escape });
    if (raw === '')
        throw new DockerfileError('WORKDIR can not be empty');
    const wd = resolveWorkdir(st.config.WorkingDir, raw);
    st.config.WorkingDir = wd;
    const name = stepName(st, ins.original);
    if (wd === '/') {
        pushHistory(st, `WORKDIR ${wd}`);
        return;
    }
    // BuildKit creates the directory (owned by the current USER) so a later step finds it.
    const chown = st.config.User ? parseUserSpec(st.config.User, 'USER') : undefined;
    const def = {
        kind: 'file',
        hasRoot: st.root !== null,
        actions: [{ op: 'mkdir', path: wd, mode: 0o755, ...(chown ? { chown } : {}) }],
    };
    st.root = addVertex(ctx, st, def, st.root ? [st.root] : [], name, ins.range);
    pushHistory(st, `WORKDIR ${wd}`, st.root);
}
export function dispatchVolume(st, ins, ctx) {
    const lookup = stageLookup(st);
    const vols = ins.volumes.map((v) => processWord(v, lookup, { escape: ctx.escape }));
    const volumes = { ...(st.config.Volumes ?? {}) };
    for (const v of vols) {
        if (v.trim() === '')
            throw new DockerfileError('VOLUME specified can not be an empty string');
        volumes[v] = {};
    }
    st.config.Volumes = volumes;
    pushHistory(st, `VOLUME [${vols.join(' ')}]`);
}
export function dispatchShell(st, ins) {
    st.config.Shell = [...ins.shell];
    pushHistory(st, `SHELL [${ins.shell.join(' ')}]`);
}
export function dispatchHealthcheck(st, ins) {
    const hc = { Test: [...ins.test] };
    if (ins.interval !== undefined)
        hc.Interval = ins.interval;
    if (ins.timeout !== undefined)
        hc.Timeout = ins.timeout;
    if (ins.startPeriod !== undefined)
        hc.StartPeriod = ins.startPeriod;
    if (ins.startInterval !== undefined)
        hc.StartInterval = ins.startInterval;
    if (ins.retries !== undefined)
        hc.Retries = ins.retries;
    st.config.Healthcheck = hc;
    pushHistory(st, `HEALTHCHECK ${ins.test.join(' ')}`);
}
export function dispatchCmd(st, ins) {
    const args = commandArgs(st, ins.cmd);
    if (ins.kind === 'CMD') {
        st.config.Cmd = args;
        st.cmdSet = true;
    }
    else {
        st.config.Entrypoint = args;
        // An ENTRYPOINT drops a CMD inherited from the base, not one set in this stage.
        if (!st.cmdSet)
            delete st.config.Cmd;
    }
    pushHistory(st, `${ins.kind} ${quoteList(args)}`);
}
export function dispatchOnbuild(st, ins) {
    st.config.OnBuild = [...(st.config.OnBuild ?? []), ins.expression];
    pushHistory(st, `ONBUILD ${ins.expression}`);
}
//# sourceMappingURL=convert-meta.js.map