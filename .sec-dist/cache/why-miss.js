import { isDigest } from '../core/digest.js';
const DEFAULTS = {
    /** How far `cause` follows changed inputs (a Dockerfile is rarely deeper). */
    maxDepth: 64,
    /** Values longer than this are cut in the output. */
    maxValueChars: 200,
};
/**
 * Why did `key` miss? Compares its pre-image with the closest stored pre-image
 * of the same step (fewest differing leaves, newest on a tie) and, when the
 * difference is only an input's key, explains that input the same way, so the
 * answer ends at the edit that caused it: a file's content, an env entry, the
 * base image digest.
 */
export async function explainMiss(index, key) {
    const all = await loadAll(index);
    return explain(all, key, 0);
}
function explain(all, key, depth) {
    const mine = all.get(key);
    if (!mine)
        return undefined;
    let best;
    for (const sameName of [true, false]) {
        for (const [k, p] of all) {
            if (k === key)
                continue;
            if (sameName ? p.name !== mine.name : p.stage !== mine.stage || p.kind !== mine.kind)
                continue;
            const diffs = diff(p.preimage, mine.preimage, '');
            if (!best || diffs.length < best.diffs.length)
                best = { key: k, diffs };
        }
        if (best)
            break;
    }
    if (!best)
        return { key, name: mine.name, diffs: [] };
    const out = { key, name: mine.name, closest: best.key, diffs: best.diffs.map(shorten) };
    const inputs = best.diffs.filter((d) => /^inputs\[\d+\]$/.test(d.path));
    if (depth < DEFAULTS.maxDepth && inputs.length === best.diffs.length && inputs.length > 0 && isDigest(inputs[0].now)) {
        const cause = explain(all, inputs[0].now, depth + 1);
        if (cause)
            return { ...out, cause };
    }
    return out;
}
async function loadAll(index) {
    const out = new Map();
    for await (const k of index.listPreimages()) {
        const p = (await index.getPreimage(k));
        if (p && typeof p === 'object' && typeof p.name === 'string' && 'preimage' in p)
            out.set(k, p);
    }
    return out;
}
/** Leaves that differ, arrays compared index by index (env and mounts keep their order in a def). */
export function diff(a, b, path) {
    if (Object.is(a, b))
        return [];
    const bothObjects = typeof a === 'object' && a !== null && typeof b === 'object' && b !== null;
    if (!bothObjects || Array.isArray(a) !== Array.isArray(b))
        return [{ path: path || '.', was: a, now: b }];
    const out = [];
    if (Array.isArray(a) && Array.isArray(b)) {
        for (let i = 0; i < Math.max(a.length, b.length); i++) {
            const p = `${path}[${i}]`;
            if (i >= a.length)
                out.push({ path: p, now: b[i] });
            else if (i >= b.length)
                out.push({ path: p, was: a[i] });
            else
                out.push(...diff(a[i], b[i], p));
        }
        return out;
    }
    const ao = a;
    const bo = b;
    for (const k of [...new Set([...Object.keys(ao), ...Object.keys(bo)])].sort()) {
        const p = path ? `${path}.${k}` : k;
        if (!(k in bo))
            out.push({ path: p, was: ao[k] });
        else if (!(k in ao))
            out.push({ path: p, now: bo[k] });
        else
            out.push(...diff(ao[k], bo[k], p));
    }
    return out;
}
function shorten(d) {
    const cut = (v) => {
        if (v === undefined)
            return undefined;
        const s = typeof v === 'string' ? v : JSON.stringify(v);
        return s.length > DEFAULTS.maxValueChars ? `${s.slice(0, DEFAULTS.maxValueChars)}...` : v;
    };
    return { path: d.path, ...(d.was !== undefined ? { was: cut(d.was) } : {}), ...(d.now !== undefined ? { now: cut(d.now) } : {}) };
}
/** The explanation as lines for people. */
export function formatExplanation(e, indent = '') {
    const lines = [`${indent}${e.name}  (key ${e.key.slice(0, 19)})`];
    if (!e.closest) {
        lines.push(`${indent}  no earlier pre-image of this step is stored: it never ran with --debug-cache before`);
        return lines;
    }
    lines.push(`${indent}  compared with ${e.closest.slice(0, 19)}:`);
    if (e.diffs.length === 0)
        lines.push(`${indent}  no difference in the pre-image (the record or one of its blobs was removed, or the cache was bypassed)`);
    for (const d of e.diffs)
        lines.push(`${indent}  ${d.path}: ${fmt(d.was)} -> ${fmt(d.now)}`);
    if (e.cause) {
        lines.push(`${indent}  because its input changed:`);
        lines.push(...formatExplanation(e.cause, `${indent}    `));
    }
    return lines;
}
function fmt(v) {
    return v === undefined ? '(absent)' : JSON.stringify(v);
}
//# sourceMappingURL=why-miss.js.map