import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const projectRoot = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Compiles project files (and what they import) to plain ESM under `outDir`,
 * for child processes that run our code without a TS loader. Returns the path
 * of the compiled first entry.
 */
export async function compileForChild(outDir: string, entries: readonly string[]): Promise<string[]> {
  await promisify(execFile)(
    join(projectRoot, 'node_modules', '.bin', 'tsc'),
    ['--ignoreConfig', '--outDir', outDir, '--rootDir', projectRoot, '--module', 'nodenext', '--moduleResolution', 'nodenext',
      '--target', 'es2022', '--skipLibCheck', '--types', 'node', ...entries.map((e) => join(projectRoot, e))],
    { cwd: projectRoot },
  );
  await writeFile(join(outDir, 'package.json'), '{"type":"module"}');
  return entries.map((e) => join(outDir, e.replace(/\.ts$/, '.js')));
}
