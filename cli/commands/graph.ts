import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { convertDockerfile, DockerfileError, formatDockerfileError, offlineResolver, renderGraph } from '../../builder/index.js';
import { parseFlags } from '../flags.js';
import { UsageError } from '../usage.js';

export async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags('graph', argv, {
    file: { type: 'string', short: 'f' },
    target: { type: 'string' },
    'build-arg': { type: 'string', multiple: true },
    format: { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError('graph needs exactly one CONTEXT argument', 'graph');
  const format = v.format ?? 'json';
  if (format !== 'json' && format !== 'dot' && format !== 'mermaid') throw new UsageError(`--format "${format}": want json, dot or mermaid`, 'graph');
  const contextDir = path.resolve(positionals[0]!);
  const file = v.file ? path.resolve(v.file) : path.join(contextDir, 'Dockerfile');
  const text = await readFile(file, 'utf8').catch(() => {
    throw new UsageError(`cannot read Dockerfile ${file}`, 'graph');
  });
  const buildArgs: Record<string, string> = {};
  for (const a of v['build-arg'] ?? []) {
    const eq = a.indexOf('=');
    if (eq > 0) buildArgs[a.slice(0, eq)] = a.slice(eq + 1);
    else if (process.env[a] !== undefined) buildArgs[a] = process.env[a]!;
  }
  const dockerignore = await readFile(path.join(contextDir, '.dockerignore'), 'utf8').catch(() => undefined);
  const def = await convertDockerfile({
    dockerfile: text,
    fileName: path.basename(file),
    buildArgs,
    ...(v.target ? { target: v.target } : {}),
    resolver: offlineResolver,
    ...(dockerignore !== undefined ? { dockerignore } : {}),
  }).catch((err: unknown) => {
    if (!(err instanceof DockerfileError)) throw err;
    process.stderr.write(`${formatDockerfileError(err, text)}\n`);
    return undefined;
  });
  if (!def) return 1;
  process.stdout.write(`${renderGraph(def, format)}\n`);
  return 0;
}
