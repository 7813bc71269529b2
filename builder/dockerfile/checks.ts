import type { SourceRange } from '../../core/errors.js';
import type { Warning } from '../graph/index.js';
import { DEFAULT_CHECKS, parseCheckOptions, withComment, type CheckConfig } from './check-config.js';
import type { CheckRule } from './check-rules.js';
import type { CheckText } from './parse.js';
import { DockerfileError, suggest } from './errors.js';

/** The build arg that sets the checks for a build, over the file's `# check=` directive (BuildKit's name). */
export const CHECK_BUILD_ARG = 'BUILDKIT_DOCKERFILE_CHECK';

/**
 * The checks of one conversion: rules report here, where the configuration
 * decides what is kept. Each warning is kept once per rule, line and message,
 * with its rule's name and documentation, and marked fatal under `error=true`.
 */
export class Checks {
  private readonly seen = new Set<string>();
  private readonly comments = new Map<number, CheckConfig>();

  constructor(
    private readonly config: CheckConfig,
    text: CheckText,
    private readonly out: Warning[],
  ) {
    for (const [line, value] of text.comments) {
      try {
        this.comments.set(line, withComment(config, parseCheckOptions(value)));
      } catch {
        // A comment that only looks like a directive is a comment, as in BuildKit.
      }
    }
  }

  /** The configuration from the build arg when given (it replaces the directive), else from the `# check=` directive. */
  static configOf(text: CheckText, buildArgs: ReadonlyMap<string, string>): CheckConfig {
    const fromArg = buildArgs.get(CHECK_BUILD_ARG);
    if (fromArg !== undefined) {
      try {
        return parseCheckOptions(fromArg);
      } catch (err) {
        throw new DockerfileError(`--build-arg ${CHECK_BUILD_ARG}: ${(err as Error).message}`, { cause: err });
      }
    }
    if (!text.directive) return DEFAULT_CHECKS;
    try {
      return parseCheckOptions(text.directive.value);
    } catch (err) {
      throw new DockerfileError(`# check directive: ${(err as Error).message}`, { cause: err, range: text.directive.range });
    }
  }

  report<A extends unknown[]>(rule: CheckRule<A>, range: SourceRange | undefined, ...args: A): void {
    const cfg = (range && this.comments.get(range.startLine)) ?? this.config;
    if (cfg.skipAll || cfg.skip.has(rule.name)) return;
    const message = rule.message(...args);
    const key = `${rule.name}\0${range?.startLine ?? 0}\0${message}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.out.push({ message, rule: rule.name, ...(rule.url ? { url: rule.url } : {}), ...(range ? { range } : {}), ...(this.config.error ? { fatal: true as const } : {}) });
  }

  /** A name suggestion among `known`, for UndefinedVar and UndefinedArgInFrom. */
  static closest(name: string, known: Iterable<string>): string | undefined {
    return suggest(name, [...known]);
  }
}

/** With `# check=error=true`, the error that fails a build whose checks warned: the rules, at the first warning's line. */
export function checkFailure(warnings: readonly Warning[]): DockerfileError | undefined {
  const fatal = warnings.filter((w) => w.fatal);
  const first = fatal[0];
  if (!first) return undefined;
  const rules = [...new Set(fatal.map((w) => w.rule))].sort().join(', ');
  return new DockerfileError(`build checks failed (check=error=true): ${rules}`, first.range ? { range: first.range } : undefined);
}
