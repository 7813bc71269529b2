import type { BuildEventBody } from '../core/build.js';
import { checkDockerfile, DockerfileError, formatDockerfileError } from '../builder/index.js';
import type { ParsedBuild } from './parsed-build.js';
import { checkReport } from './warnings.js';

/**
 * `buildlite build --check`: the build checks, without building. Prints each
 * warning with its rule, documentation and lines (or, with `--progress json`,
 * one warning event per line) and exits 0, or 1 when `check=error=true` turns
 * them into a failure or the Dockerfile does not convert.
 */
export async function runCheck(p: ParsedBuild): Promise<number> {
  const dockerfile = p.request.dockerfile;
  let result;
  try {
    result = await checkDockerfile(p.request, { insecureRegistries: p.insecure, ...(p.timeouts ? { timeouts: p.timeouts } : {}) });
  } catch (err) {
    if (!(err instanceof DockerfileError)) throw err;
    process.stderr.write(`${formatDockerfileError(err, dockerfile)}\n`);
    return 1;
  }
  const events: BuildEventBody[] = result.warnings.map((w) => ({
    type: 'warning',
    message: w.message,
    ...(w.range ? { range: w.range } : {}),
    ...(w.rule ? { rule: w.rule } : {}),
    ...(w.url ? { url: w.url } : {}),
  }));
  if (p.progress === 'json') {
    events.forEach((e, i) => process.stdout.write(`${JSON.stringify({ ...e, seq: i + 1 })}\n`));
  } else if (p.progress !== 'quiet') {
    // In file order, whatever order the rules found them in.
    const byLine = [...events].sort((a, b) => line(a) - line(b));
    for (const e of byLine) if (e.type === 'warning') process.stdout.write(`${checkReport(e, dockerfile)}\n\n`);
    const n = events.length;
    process.stdout.write(n === 0 ? 'Check complete, no warnings found.\n' : `Check complete, ${n} warning${n === 1 ? ' has' : 's have'} been found!\n`);
  }
  if (result.failure) {
    process.stderr.write(`ERROR: ${result.failure.message}\n`);
    return 1;
  }
  return 0;
}

function line(e: BuildEventBody): number {
  return e.type === 'warning' ? (e.range?.startLine ?? 0) : 0;
}
