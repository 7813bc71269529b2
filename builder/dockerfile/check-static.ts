import { parseReference } from '../../core/reference.js';
import { casingOf, RESERVED_STAGE_NAMES, RULES } from './check-rules.js';
import { Checks } from './checks.js';
import { extractFlagWords } from './flags.js';
import type { Instruction } from './instructions.js';
import { processWord, splitWhitespace, type Lookup } from './lexer.js';
import type { CheckText } from './parse.js';
import type { StagePlan } from './stages.js';

/**
 * The checks that read the whole file rather than a stage being converted:
 * casing, stage names, deprecated instructions, the text's continuations and
 * the args FROM uses. They run for every stage, reached by the target or not,
 * as BuildKit's parse-time rules do.
 */
export function checkWholeFile(plan: StagePlan, text: CheckText, checks: Checks): void {
  checkStageNames(plan, checks);
  checkCasing(plan, checks);
  for (const s of plan.stages) {
    for (const ins of s.instructions) if (ins.kind === 'MAINTAINER') checks.report(RULES.MaintainerDeprecated, ins.range);
  }
  for (const range of text.emptyContinuations) checks.report(RULES.NoEmptyContinuation, range);
}

/** The keyword as written (`from`, `Run`). */
function keywordOf(ins: Instruction): string {
  return ins.original.split(/\s/, 1)[0] ?? '';
}

function checkStageNames(plan: StagePlan, checks: Checks): void {
  const firstLine = new Map<string, number>();
  for (const s of plan.stages) {
    const from = s.from;
    const keyword = keywordOf(from);
    const [, as, written] = splitWhitespace(extractFlagWords(from.original.slice(keyword.length)).rest);
    if (as === undefined || written === undefined || from.name === undefined) continue;
    if (written !== written.toLowerCase()) checks.report(RULES.StageNameCasing, from.range, written);
    const fromCase = casingOf(keyword);
    if (fromCase !== 'mixed' && casingOf(as) !== fromCase) checks.report(RULES.FromAsCasing, from.range, keyword, as);
    if (RESERVED_STAGE_NAMES.has(from.name)) checks.report(RULES.ReservedStageName, from.range, from.name);
    const first = firstLine.get(from.name);
    if (first !== undefined) checks.report(RULES.DuplicateStageName, from.range, from.name, first);
    else firstLine.set(from.name, from.range.startLine);
  }
}

/** Every FROM and every instruction of a stage counts; the majority of all-upper and all-lower keywords sets the file's casing. */
function checkCasing(plan: StagePlan, checks: Checks): void {
  const all = plan.stages.flatMap((s) => [s.from, ...s.instructions]);
  let lower = 0;
  let upper = 0;
  for (const ins of all) {
    const c = casingOf(keywordOf(ins));
    if (c === 'lower') lower++;
    else if (c === 'upper') upper++;
  }
  const majority = lower > upper ? 'lower' : 'upper';
  for (const ins of all) {
    const written = keywordOf(ins);
    if (casingOf(written) !== majority) checks.report(RULES.ConsistentInstructionCasing, ins.range, written, majority);
  }
}

/**
 * UndefinedArgInFrom: a variable in a FROM's image or --platform that no ARG
 * before the first FROM declares (the platform args are always there).
 */
export function checkFromArgs(plan: StagePlan, declared: (name: string) => boolean, lookup: Lookup, escape: string, checks: Checks, known: readonly string[]): void {
  for (const s of plan.stages) {
    const reporting: Lookup = (n) => {
      if (!declared(n)) checks.report(RULES.UndefinedArgInFrom, s.from.range, n, Checks.closest(n, known));
      return lookup(n);
    };
    for (const word of [s.from.image, s.from.platform]) {
      if (word === undefined) continue;
      try {
        processWord(word, reporting, { escape });
      } catch {
        // A malformed FROM fails with its line when its stage is converted.
      }
    }
  }
}

/**
 * RedundantTargetPlatform and FromPlatformFlagConstDisallowed: a FROM
 * --platform that is exactly $TARGETPLATFORM, or a constant (unless the stage's
 * name mentions its OS or architecture, which says the pin is meant).
 */
export function checkFromPlatforms(plan: StagePlan, lookup: Lookup, escape: string, checks: Checks): void {
  for (const s of plan.stages) {
    const written = s.from.platform;
    if (written === undefined) continue;
    const used: string[] = [];
    let value: string;
    try {
      value = processWord(written, (n) => (used.push(n), lookup(n)), { escape });
    } catch {
      continue;
    }
    if (used.length === 1 && used[0] === 'TARGETPLATFORM' && value === lookup('TARGETPLATFORM')) checks.report(RULES.RedundantTargetPlatform, s.from.range, written);
    const [os, arch] = value.split('/');
    const named = s.name !== undefined && ((os !== undefined && s.name.includes(os)) || (arch !== undefined && s.name.includes(arch)));
    if (used.length === 0 && os && arch && !named) checks.report(RULES.FromPlatformFlagConstDisallowed, s.from.range, value);
  }
}

/** InvalidDefaultArgInFrom: with only the global ARGs' defaults (no --build-arg), each FROM must still name a valid image. */
export function checkDefaultFromArgs(plan: StagePlan, defaults: Lookup, escape: string, isStage: (name: string) => boolean, checks: Checks): void {
  for (const s of plan.stages) {
    let name: string;
    try {
      name = processWord(s.from.image, defaults, { escape });
    } catch {
      continue;
    }
    if (name.toLowerCase() === 'scratch' || isStage(name)) continue;
    try {
      parseReference(name);
    } catch {
      checks.report(RULES.InvalidDefaultArgInFrom, s.from.range, s.from.image);
    }
  }
}
