import { withLocation } from '../../core/errors.js';
import { DockerfileError } from './errors.js';
import type { ArgInstruction, FromInstruction, Instruction } from './instructions.js';
import { processWord, type Lookup } from './lexer.js';

/** Stages by name and index, the edges between them, cycle detection and --target pruning. */

export interface Stage {
  readonly index: number;
  /** Lower-case AS name, if any. */
  readonly name?: string;
  readonly from: FromInstruction;
  readonly instructions: readonly Instruction[];
}

export interface StagePlan {
  readonly globals: readonly ArgInstruction[];
  readonly stages: readonly Stage[];
}

export function splitStages(instructions: readonly Instruction[]): StagePlan {
  const globals: ArgInstruction[] = [];
  const stages: Array<{ index: number; name?: string; from: FromInstruction; instructions: Instruction[] }> = [];
  for (const ins of instructions) {
    if (ins.kind === 'FROM') {
      const index = stages.length;
      stages.push({ index, ...(ins.name ? { name: ins.name } : {}), from: ins, instructions: [] });
      continue;
    }
    const cur = stages[stages.length - 1];
    if (cur) cur.instructions.push(ins);
    else if (ins.kind === 'ARG') globals.push(ins);
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
  // A name given twice is a DuplicateStageName warning, not an error: as in BuildKit, references find the last one.
  return { globals, stages };
}

export function stageLabel(s: Stage): string {
  return s.name ?? `stage-${s.index}`;
}

/**
 * A `--from` / FROM reference to another stage: its AS name (any case) or,
 * for --from, its index. Undefined means "not a stage" (an image).
 */
export function findStage(stages: readonly Stage[], ref: string, allowIndex: boolean): Stage | undefined {
  const lower = ref.toLowerCase();
  const byName = stages.findLast((s) => s.name === lower);
  if (byName) return byName;
  if (allowIndex && /^[0-9]+$/.test(ref)) {
    const s = stages[Number(ref)];
    if (!s) throw new DockerfileError(`invalid --from=${ref}: there is no stage with that index (${stages.length} stages)`);
    return s;
  }
  return undefined;
}

/** The stage FROM builds on, when it names an earlier stage. */
export function baseStage(stages: readonly Stage[], s: Stage, image: string): Stage | undefined {
  const lower = image.toLowerCase();
  return stages.findLast((x) => x.index < s.index && x.name === lower);
}

/** `from=` of each `--mount`, found before expansion with a cheap scan (the full parse happens at RUN). */
function mountFroms(text: string): string[] {
  const out: string[] = [];
  for (const f of text.split(',')) {
    const m = /^\s*from=(.*)$/i.exec(f);
    if (m) out.push((m[1] as string).replace(/^"|"$/g, ''));
  }
  return out;
}

/**
 * The stages each stage reads (FROM <stage>, COPY --from, RUN --mount from=),
 * with references expanded against the global args. Self references and
 * cycles are errors that name the offending line.
 */
export function stageDeps(plan: StagePlan, lookup: Lookup, escape: string): Map<number, Set<number>> {
  const deps = new Map<number, Set<number>>();
  const expand = (w: string): string => processWord(w, lookup, { escape });
  for (const s of plan.stages) {
    const set = new Set<number>();
    deps.set(s.index, set);
    try {
      const base = baseStage(plan.stages, s, expand(s.from.image));
      if (base) set.add(base.index);
    } catch (err) {
      throw withLocation(err, s.from.range);
    }
    for (const ins of s.instructions) {
      try {
        const refs: string[] = [];
        if ((ins.kind === 'COPY' || ins.kind === 'ADD') && ins.from !== undefined) refs.push(ins.from);
        if (ins.kind === 'RUN') for (const m of ins.mounts) refs.push(...mountFroms(m));
        for (const r of refs) {
          const target = findStage(plan.stages, expand(r), true);
          if (!target) continue;
          if (target.index === s.index) throw new DockerfileError(`stage ${JSON.stringify(stageLabel(s))} refers to itself`);
          set.add(target.index);
        }
      } catch (err) {
        throw withLocation(err, ins.range);
      }
    }
  }
  findCycle(plan, deps);
  return deps;
}

function findCycle(plan: StagePlan, deps: Map<number, Set<number>>): void {
  const state = new Map<number, 'visiting' | 'done'>();
  const visit = (i: number, path: number[]): void => {
    const st = state.get(i);
    if (st === 'done') return;
    if (st === 'visiting') {
      const cycle = [...path.slice(path.indexOf(i)), i].map((n) => stageLabel(plan.stages[n] as Stage));
      const s = plan.stages[i] as Stage;
      throw new DockerfileError(`circular dependency between stages: ${cycle.join(' -> ')}`, { range: s.from.range });
    }
    state.set(i, 'visiting');
    for (const d of deps.get(i) ?? []) visit(d, [...path, i]);
    state.set(i, 'done');
  };
  for (const s of plan.stages) visit(s.index, []);
}

/** The stage --target names (default: the last one). */
export function targetStage(plan: StagePlan, target: string | undefined): Stage {
  if (target === undefined || target === '') return plan.stages[plan.stages.length - 1] as Stage;
  const s = plan.stages.findLast((x) => x.name === target.toLowerCase());
  if (!s) {
    const names = plan.stages.filter((x) => x.name).map((x) => x.name);
    throw new DockerfileError(`target stage ${JSON.stringify(target)} could not be found${names.length ? ` (stages: ${names.join(', ')})` : ''}`);
  }
  return s;
}
