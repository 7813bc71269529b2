import { DockerfileError } from './errors.js';

/**
 * Which checks run and whether they fail the build: BuildKit's `check`
 * options, `skip=A,B` (or `skip=all`), `error=true` and `experimental=...`,
 * separated by `;`. They come from the `# check=` directive, or from the
 * BUILDKIT_DOCKERFILE_CHECK build arg, which replaces it; a `# check=` comment
 * right above an instruction skips more rules for that instruction alone.
 */
export interface CheckConfig {
  readonly skipAll: boolean;
  readonly skip: ReadonlySet<string>;
  /** Any warning fails the build (after all of them are reported). */
  readonly error: boolean;
}

export const DEFAULT_CHECKS: CheckConfig = { skipAll: false, skip: new Set(), error: false };

/** Go's strconv.ParseBool, which BuildKit reads `error=` with. */
const BOOLS: Record<string, boolean> = { '1': true, t: true, T: true, TRUE: true, true: true, True: true, '0': false, f: false, F: false, FALSE: false, false: false, False: false };

export function parseCheckOptions(text: string): CheckConfig {
  const trimmed = text.trim();
  if (trimmed === '') return DEFAULT_CHECKS;
  let skipAll = false;
  const skip = new Set<string>();
  let error = false;
  for (const part of trimmed.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) throw new DockerfileError(`invalid check option ${JSON.stringify(part)}: want skip=RULE,..., error=true or experimental=RULE,...`);
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    switch (key) {
      case 'skip':
        if (value === 'all') skipAll = true;
        else for (const r of value.split(',')) skip.add(r.trim());
        break;
      case 'error': {
        const b = BOOLS[value];
        if (b === undefined) throw new DockerfileError(`invalid check option error=${value}: want true or false`);
        error = b;
        break;
      }
      case 'experimental':
        // BuildKit's experimental rules are not implemented here: nothing to turn on.
        break;
      default:
        throw new DockerfileError(`invalid check option ${JSON.stringify(key)}: the options are skip, error and experimental`);
    }
  }
  return { skipAll, skip, error };
}

/** A `# check=` comment above an instruction: it may skip more, never fewer, and leaves `error` as it was. */
export function withComment(base: CheckConfig, comment: CheckConfig): CheckConfig {
  return { skipAll: base.skipAll || comment.skipAll, skip: new Set([...base.skip, ...comment.skip]), error: base.error };
}
