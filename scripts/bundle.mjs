#!/usr/bin/env node
// Bundles the CLI into dist/bundle/ (what the `buildlite` bin runs). Node's ESM
// loader pays per module: the unbundled CLI resolves ~200 files and spends
// ~0.15 s loading before it does any work, which is most of a cached build or
// a re-push. One bundle with lazily loaded chunks (one per command) cuts that
// to a few tens of ms. tsc still type-checks and emits dist/ for the tests of
// internals; this bundles from the same sources.
import { build } from 'esbuild';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// `--outdir DIR` for a second copy (the benchmarks bundle into bench/.dist/bundle).
const at = process.argv.indexOf('--outdir');
const outdir = at > 0 && process.argv[at + 1] ? path.resolve(process.argv[at + 1]) : path.join(root, 'dist', 'bundle');

await build({
  entryPoints: [path.join(root, 'cli', 'main.ts')],
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  // Service-only dependencies stay in node_modules: only `serve`, `worker`
  // and remote builds load them, and some ship native or data files.
  external: ['@grpc/grpc-js', '@grpc/proto-loader', 'bullmq', 'ioredis', 'pino', 'prom-client'],
  // Bundled CommonJS dependencies call require() for Node built-ins.
  banner: { js: "import { createRequire as __blCreateRequire } from 'node:module'; const require = __blCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
// dist/ holds no package.json of its own; the bundle is ESM whatever the nearest one says.
writeFileSync(path.join(outdir, 'package.json'), '{ "type": "module" }\n');
