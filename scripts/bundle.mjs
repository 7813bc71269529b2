#!/usr/bin/env node
// Bundles the CLI into dist/bundle/ (what the `buildlite` bin runs):
//   cli.cjs   the whole CLI in one CommonJS file (esbuild, from cli/main.ts)
//   main.js   the bin (cli/boot.ts): runs cli.cjs through a per-user V8 code cache
// Node's ESM loader pays per module (~200 separate modules cost 0.15 s before
// any work), and compiling what remains is most of the rest of a short
// command's start-up: one file, loaded with a code cache, avoids both. tsc
// still type-checks and emits dist/ for the tests of internals; this bundles
// from the same sources.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// `--outdir DIR` for a second copy (the benchmarks bundle into bench/.dist/bundle).
const at = process.argv.indexOf('--outdir');
const outdir = at > 0 && process.argv[at + 1] ? path.resolve(process.argv[at + 1]) : path.join(root, 'dist', 'bundle');

rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });
const common = { bundle: true, platform: 'node', target: 'node20', sourcemap: true, logLevel: 'warning', charset: 'ascii' };

const cli = path.join(outdir, 'cli.cjs');
await build({
  ...common,
  entryPoints: [path.join(root, 'cli', 'main.ts')],
  outfile: cli,
  format: 'cjs',
  // Service-only dependencies stay in node_modules: only `serve`, `worker`
  // and remote builds load them, and some ship native or data files.
  external: ['@grpc/grpc-js', '@grpc/proto-loader', 'bullmq', 'ioredis', 'pino', 'prom-client'],
  // The sources are ESM; in one CommonJS file import.meta.url is the bundle's own URL.
  define: { 'import.meta.url': '__blImportMetaUrl' },
  banner: { js: "const __blImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
});
// All ASCII, so the bin reads it as one-byte text without decoding UTF-8 (~30 M
// instructions of a ~300 M re-push). esbuild's ascii charset escapes strings and
// identifiers but leaves comments and regular-expression literals as written; a
// \u escape means the same code units in both (a surrogate pair for astral ones).
const text = readFileSync(cli, 'utf8').replace(/[^\x00-\x7f]/gu, (c) =>
  Array.from({ length: c.length }, (_, i) => `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`).join(''),
);
writeFileSync(cli, text);

// The bin is CommonJS too: an ESM entry sets up Node's ESM loader first, ~12 ms
// of every command (`--version` 0.10 -> 0.09 s here).
await build({
  ...common,
  entryPoints: [path.join(root, 'cli', 'boot.ts')],
  outfile: path.join(outdir, 'main.js'),
  format: 'cjs',
  define: { BUNDLE_ID: JSON.stringify(createHash('sha256').update(text).digest('hex').slice(0, 16)), 'import.meta.url': '__blImportMetaUrl' },
  banner: { js: "const __blImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
});
// dist/ holds no package.json of its own: this one says main.js is CommonJS (cli.cjs says it by its name).
writeFileSync(path.join(outdir, 'package.json'), '{ "type": "commonjs" }\n');
