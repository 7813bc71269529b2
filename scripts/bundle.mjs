#!/usr/bin/env node
// Bundles the CLI into dist/bundle/ (what the `buildlite` bin runs):
//   cli.cjs       the whole CLI in one CommonJS file (esbuild, from cli/main.ts)
//   cli-push.cjs  `push` alone (cli/main-push.ts): a re-push is mostly start-up,
//                 and it needs a tenth of the code (package.json says
//                 "sideEffects": false, so esbuild leaves out modules an
//                 index.ts re-exports that nothing in a bundle uses)
//   main.js       the bin (cli/boot.ts): runs the command's bundle through a
//                 per-user V8 code cache
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

/** Bundles of their own, by command; every other command runs cli.cjs. */
const OWN_BUNDLES = { push: 'main-push.ts' };

/** Bundles one entry into FILE (in outdir); returns its id, a prefix of its sha256. */
async function bundleEntry(entry, file) {
  const out = path.join(outdir, file);
  await build({
    ...common,
    entryPoints: [path.join(root, 'cli', entry)],
    outfile: out,
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
  const text = readFileSync(out, 'utf8').replace(/[^\x00-\x7f]/gu, (c) =>
    Array.from({ length: c.length }, (_, i) => `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`).join(''),
  );
  writeFileSync(out, text);
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

// What the bin reads (cli/boot.ts, BUNDLES): each bundle's file and id, by command.
const bundles = { all: { file: 'cli.cjs', id: await bundleEntry('main.ts', 'cli.cjs') }, commands: {} };
for (const [command, entry] of Object.entries(OWN_BUNDLES)) {
  const file = `cli-${command}.cjs`;
  bundles.commands[command] = { file, id: await bundleEntry(entry, file) };
}

// The bin is CommonJS too: an ESM entry sets up Node's ESM loader first, ~12 ms
// of every command (`--version` 0.10 -> 0.09 s here).
await build({
  ...common,
  entryPoints: [path.join(root, 'cli', 'boot.ts')],
  outfile: path.join(outdir, 'main.js'),
  format: 'cjs',
  define: { BUNDLES: JSON.stringify(bundles), 'import.meta.url': '__blImportMetaUrl' },
  banner: { js: "const __blImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
});
// dist/ holds no package.json of its own: this one says main.js is CommonJS (the .cjs files say it by their names).
writeFileSync(path.join(outdir, 'package.json'), '{ "type": "commonjs" }\n');
