import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export async function run(_argv: string[]): Promise<number> {
  process.stdout.write(`buildlite ${packageVersion()} (node ${process.version})\n`);
  return 0;
}

/**
 * The version in buildlite's package.json, found by walking up from this
 * module: the compiled tree may sit in dist/ or in another output dir (the
 * benchmarks compile into bench/.dist).
 */
function packageVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'buildlite' && pkg.version) return pkg.version;
    } catch {
      // no package.json here: keep walking up
    }
    const up = path.dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}
