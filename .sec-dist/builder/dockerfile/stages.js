import { withLocation } from '../../core/errors.js';
import { DockerfileError } from './errors.js';
import { processWord } from './lexer.js';
export function splitStages(instructions) {
    const globals = [];
    const stages = [];
    for (const ins of instructions) {
        if (ins.kind === 'FROM') {
            const index = stages.length;
            stages.push({ index, ...(ins.name ? { name: ins.name } : {}), from: ins, instructions: [] });
            continue;
        }
        const cur = stages[stages.length - 1];
        if (cur)
            cur.instructions.push(ins);
        else if (ins.kind === 'ARG')
            globals.push(ins);
        else {
            throw new DockerfileError(`${ins.kind} before the first FROM: a Dockerfile must start with FROM (only ARG may precede it)`, {
                range: ins.range,
            });
        }
    }
    if (stages.length === 0) {
        const last = instructions[instructions.length - 1];
        throw new DockerfileError('no FROM instruction: a Dockerfile needs at least one FROM', last ? { range: last.range } : undefined);
    }
    const seen = new Map();
    for (const s of stages) {
        if (!s.name)
            continue;
        if (seen.has(s.name))
            throw new DockerfileError(`duplicate stage name ${JSON.stringify(s.name)}`, { range: s.from.range });
        seen.set(s.name, s.index);
    }
    return { globals, stages };
}
export function stageLabel(s) {
    return s.name ?? `stage-${s.index}`;
}
/**
 * A `--from` / FROM reference to another stage: its AS name (any case) or,
 * for --from, its index. Undefined means "not a stage" (an image).
 */
export function findStage(stages, ref, allowIndex) {
    const lower = ref.toLowerCase();
    const byName = stages.find((s) => s.name === lower);
    if (byName)
        return byName;
    if (allowIndex && /^[0-9]+$/.test(ref)) {
        const s = stages[Number(ref)];
        if (!s)
            throw new DockerfileError(`invalid --from=${ref}: there is no stage with that index (${stages.length} stages)`);
        return s;
    }
    return undefined;
}
/** The stage FROM builds on, when it names an earlier stage. */
export function baseStage(stages, s, image) {
    const lower = image.toLowerCase();
    return stages.find((x) => x.index < s.index && x.name === lower);
}
/** `from=` of each `--mount`, found before expansion with a cheap scan (the full parse happens at RUN). */
function mountFroms(text) {
    const out = [];
    for (const f of text.split(',')) {
        const m = /^\s*from=(.*)$/i.exec(f);
        if (m)
            out.push(m[1].replace(/^"|"$/g, ''));
    }
    return out;
}
/**
 * The stages each stage reads (FROM <stage>, COPY --from, RUN --mount from=),
 * with references expanded against the global args. Self references and
 * cycles are errors that name the offending line.
 */
export function stageDeps(plan, lookup, escape) {
    const deps = new Map();
    const expand = (w) => processWord(w, lookup, { escape });
    for (const s of plan.stages) {
        const set = new Set();
        deps.set(s.index, set);
        try {
            const base = baseStage(plan.stages, s, expand(s.from.image));
            if (base)
                set.add(base.index);
        }
        catch (err) {
            throw withLocation(err, s.from.range);
        }
        for (const ins of s.instructions) {
            try {
                const refs = [];
                if ((ins.kind === 'COPY' || ins.kind === 'ADD') && ins.from !== undefined)
                    refs.push(ins.from);
                if (ins.kind === 'RUN')
                    for (const m of ins.mounts)
                        refs.push(...mountFroms(m));
                for (const r of refs) {
                    const target = findStage(plan.stages, expand(r), true);
                    if (!target)
                        continue;
                    if (target.index === s.index)
                        throw new DockerfileError(`stage ${JSON.stringify(stageLabel(s))} refers to itself`);
                    set.add(target.index);
                }
            }
            catch (err) {
                throw withLocation(err, ins.range);
            }
        }
    }
    findCycle(plan, deps);
    return deps;
}
function findCycle(plan, deps) {
    const state = new Map();
    const visit = (i, path) => {
        const st = state.get(i);
        if (st === 'done')
            return;
        if (st === 'visiting') {
            const cycle = [...path.slice(path.indexOf(i)), i].map((n) => stageLabel(plan.stages[n]));
            const s = plan.stages[i];
            throw new DockerfileError(`circular dependency between stages: ${cycle.join(' -> ')}`, { range: s.from.range });
        }
        state.set(i, 'visiting');
        for (const d of deps.get(i) ?? [])
            visit(d, [...path, i]);
        state.set(i, 'done');
    };
    for (const s of plan.stages)
        visit(s.index, []);
}
/** The stage --target names (default: the last one). */
export function targetStage(plan, target) {
    if (target === undefined || target === '')
        return plan.stages[plan.stages.length - 1];
    const s = plan.stages.find((x) => x.name === target.toLowerCase());
    if (!s) {
        const names = plan.stages.filter((x) => x.name).map((x) => x.name);
        throw new DockerfileError(`target stage ${JSON.stringify(target)} could not be found${names.length ? ` (stages: ${names.join(', ')})` : ''}`);
    }
    return s;
}
//# sourceMappingURL=stages.js.map