/**
 * Import rules of docs/architecture.md (the table, "enter another folder only
 * through its index.ts", no re-export of another folder's code, no cycles),
 * enforced by dependency-cruiser inside `npm test` (scripts/depcheck.sh).
 *
 * The check reads the .ts sources, so every edge counts: `import type`,
 * `import { type X }`, `export type … from`, `import('./x.js').T` in a type
 * and `await import()` are all dependencies here, as they are dependencies of
 * the design even where tsc erases them or Node loads them late. A cycle that
 * holds only through types still ties two modules' meanings together.
 *
 * How the sources are parsed, and why dependency-cruiser has its own install:
 * dependency-cruiser 17 parses TypeScript only through the `typescript`
 * package's JS API (2.x to 6.x), which it loads by Node's resolution from
 * where it is installed; typescript 7, the native compiler this project
 * builds with, has no such API (dependency-cruiser 18.9 reads 7.1's new one,
 * but needs Node 22). npm cannot give one package a typescript of its own
 * beside the project's: an alias (`typescript6`) is never what
 * `import('typescript')` finds, and a workspace gets dependency-cruiser
 * hoisted next to typescript 7. So tools/depcheck is a small package with its
 * own lock holding dependency-cruiser and typescript 6 (the last release with
 * the JS API; the same syntax as 7), installed by scripts/depcheck.sh with
 * `npm ci`: dependency-cruiser's main TypeScript path, with
 * `tsPreCompilationDeps: true` keeping type-only imports. Rejected: the swc
 * parser (its visitor stops at `await using`, which the solver uses), a
 * compile to a scratch tree with `import type` rewritten (edits source text,
 * still loses `import()` types), and a scanner of our own (a parser to keep).
 * When the project moves to Node 22 and typescript 7.1, tools/depcheck goes
 * and dependency-cruiser 18 reads the sources with the project's compiler.
 */

/** Module paths are relative to the tree checked: `core/digest.ts`. */
const P = '^';
const EXT = '\\.ts$';

/** Folder names, as regex fragments (anchored by P). */
const F = {
  core: 'core/',
  registryClient: 'registry-client/',
  cache: 'cache/',
  dockerfile: 'builder/dockerfile/',
  graph: 'builder/graph/',
  solver: 'builder/solver/',
  executor: 'builder/executor/',
  snapshot: 'builder/snapshot/',
  layers: 'builder/layers/',
  image: 'builder/image/',
  // Files directly in builder/ (index.ts and the few helpers it wires together).
  builderRoot: `builder/[^/]+${EXT}`,
  builderIndex: `builder/index${EXT}`,
  // The builder's second entry: `buildlite push` needs none of the builder's
  // machinery, and entering through index.ts initializes all of it (~30 ms of
  // a 150 ms re-push: esbuild runs every module a barrel re-exports).
  builderPush: `builder/push-tagged${EXT}`,
  builderAny: 'builder/',
  store: 'store/',
  storeIndex: `store/index${EXT}`,
  worker: 'worker/',
  workerIndex: `worker/index${EXT}`,
  // The API ↔ worker contract: the queue (jobs.ts) and the files holding what
  // both sides read and write in Redis. api/ may import these and no other worker file.
  workerContract: `worker/(?:jobs|redis-keys|records|build-states|event-stream|finish-build|control-messages|step-log-ref|secret-vault)${EXT}`,
  workerEmbeddedQueue: `worker/embedded-queue${EXT}`,
  api: 'api/',
  apiIndex: `api/index${EXT}`,
  registryClientIndex: `registry-client/index${EXT}`,
  cli: 'cli/',
};

const ours = ['core', 'registry-client', 'cache', 'builder', 'store', 'worker', 'api', 'cli'];
const OURS = `${P}(?:${ours.join('|')})/`;

const re = (...frags) => `${P}(?:${frags.join('|')})`;

/**
 * The table of docs/architecture.md: for each importing folder, what it may import of ours.
 * Anything of ours not listed is forbidden. npm packages and node: builtins are
 * not restricted here (see `no-service-libs-below-worker` for the exception).
 */
const TABLE = [
  { from: F.core, allow: [F.core], why: 'core is the leaf: it imports nothing of ours' },
  { from: F.registryClient, allow: [F.core, F.registryClient], why: 'registry-client imports core only' },
  { from: F.cache, allow: [F.core, F.cache, F.registryClient], why: 'cache imports core (and registry-client for the remote cache)' },
  { from: F.dockerfile, allow: [F.core, F.dockerfile, F.graph], why: 'the frontend emits graph vertices and nothing else' },
  { from: F.graph, allow: [F.core, F.graph], why: 'builder/graph imports core only' },
  { from: F.snapshot, allow: [F.core, F.snapshot], why: 'builder/snapshot imports core only (mounts are data in core/mount.ts)' },
  { from: F.executor, allow: [F.core, F.executor], why: 'builder/executor imports core only: it takes Mount[] and knows no snapshots' },
  { from: F.layers, allow: [F.core, F.layers, F.cache], why: 'builder/layers imports core and cache' },
  { from: F.image, allow: [F.core, F.image, F.layers, F.cache, F.registryClient], why: 'builder/image imports core, layers, cache, registry-client' },
  {
    from: F.solver,
    allow: [F.core, F.solver, F.cache, F.graph, F.executor, F.snapshot, F.layers, F.image],
    why: 'the solver is the only part that knows graph, executor, snapshot, layers and image together',
  },
  { from: F.builderRoot, allow: [F.core, F.registryClient, F.cache, F.builderAny], why: 'builder/index.ts wires the builder together' },
  {
    from: F.store,
    // The registry backing keeps blobs as artifacts in a registry repository:
    // that is registry-client's job (push, HEAD, manifest GET and DELETE).
    allow: [F.core, F.store, F.registryClientIndex],
    why: 'the service store imports core, and registry-client for its registry backing',
  },
  { from: F.worker, allow: [F.core, F.worker, F.registryClient, F.cache, F.builderIndex, F.storeIndex], why: 'worker uses the builder through builder/index.ts and the store through store/index.ts' },
  { from: F.api, allow: [F.core, F.api, F.workerContract, F.storeIndex], why: 'api knows the worker only through the files of the API ↔ worker contract, and the store through store/index.ts' },
  {
    from: F.cli,
    // The cli is the composition root of the `buildlite serve` and
    // `buildlite worker` processes (issue 7), so it may enter api/ and worker/
    // through their index.ts (which also carries the API client); it still
    // never reaches their internals. `buildlite login`/`logout` check a
    // password against a registry and write the docker config: that is
    // registry-client's job, not the builder's, so the cli uses it directly.
    allow: [F.core, F.cli, F.builderIndex, F.builderPush, F.workerEmbeddedQueue, F.workerIndex, F.apiIndex, F.registryClientIndex, F.storeIndex],
    why: 'cli uses builder/index.ts (and builder/push-tagged.ts for push), worker/embedded-queue.ts and the index.ts of api/, worker/, store/ and registry-client/',
  },
];

const tableRules = TABLE.map(({ from, allow, why }) => ({
  name: `layer:${from.replace(/\[.*$/, '').replace(/\/$/, '') || 'builder'}`,
  comment: why,
  severity: 'error',
  from: { path: `${P}${from}` },
  to: { path: OURS, pathNot: re(...allow) },
}));

/**
 * Enter another top-level folder (or another builder subfolder) only through
 * its index.ts. core is exempt (its files are imported by path: it has no
 * internals to hide), and so are the worker files the table names on purpose
 * (the API ↔ worker contract, embedded-queue.ts).
 */
const indexRules = [
  {
    name: 'through-index:top-level',
    comment: 'import another top-level folder only through its index.ts',
    severity: 'error',
    from: { path: `${P}(registry-client|cache|store|worker|api|cli)/` },
    to: {
      path: `${P}(?:registry-client|cache|store|worker|api|cli)/`,
      pathNot: [`${P}$1/`, `${P}[^/]+/index${EXT}`, re(F.workerContract, F.workerEmbeddedQueue)],
    },
  },
  {
    name: 'through-index:into-builder',
    comment: 'import builder/ from outside only through builder/index.ts',
    severity: 'error',
    from: { path: `${P}(?:registry-client|cache|store|worker|api|cli)/` },
    to: { path: `${P}builder/`, pathNot: re(F.builderIndex, F.builderPush) },
  },
  {
    name: 'through-index:builder-subfolders',
    comment: 'a builder subfolder imports another only through its index.ts',
    severity: 'error',
    from: { path: `${P}builder/([^/]+)/` },
    to: { path: `${P}builder/[^/]+/`, pathNot: [`${P}builder/$1/`, `${P}builder/[^/]+/index${EXT}`] },
  },
  {
    name: 'through-index:builder-root',
    comment: 'builder/index.ts enters builder subfolders and other folders through their index.ts',
    severity: 'error',
    from: { path: `${P}${F.builderRoot}` },
    to: { path: `${P}(?:builder/[^/]+|registry-client|cache)/`, pathNot: `${P}(?:builder/[^/]+|registry-client|cache)/index${EXT}` },
  },
];

const otherRules = [
  {
    name: 'no-circular',
    // Every edge counts, type-only and dynamic ones too (see the top): a cycle
    // through `import type` or `await import()` is still two modules that
    // cannot be understood, moved or tested one without the other.
    comment: 'cycles make load order matter and layers meaningless',
    severity: 'error',
    from: {},
    to: { circular: true },
  },
  {
    name: 'no-foreign-reexport',
    // An index.ts that passes on another folder's exports makes that folder's
    // code look like its own, and lets a caller reach what the table forbids
    // it (the cli got registry-client's login through builder/index.ts).
    comment: "re-export only your own folder's code: import another folder's from its index.ts",
    severity: 'error',
    from: { path: `${P}([^/]+)/` },
    to: { path: OURS, pathNot: `${P}$1/`, dependencyTypes: ['export'] },
  },
  {
    name: 'cache-registry-client-remote-only',
    comment: 'cache may use registry-client for the remote cache only (cache/remote-cache*)',
    severity: 'error',
    from: { path: `${P}cache/`, pathNot: `${P}cache/remote-cache` },
    to: { path: `${P}registry-client/` },
  },
  {
    name: 'no-service-libs-below-worker',
    comment: 'no part below worker/ imports BullMQ, ioredis or gRPC (docs/architecture.md: the builder knows nothing of them)',
    severity: 'error',
    from: { path: `${P}(?:core|registry-client|cache|builder)/` },
    to: { path: 'node_modules/(?:bullmq|ioredis|@grpc/)' },
  },
  {
    name: 'not-to-unresolvable',
    comment: 'an import that cannot be resolved is a broken build or a missing dependency',
    severity: 'error',
    from: {},
    to: { couldNotResolve: true },
  },
];

module.exports = {
  forbidden: [...tableRules, ...indexRules, ...otherRules],
  options: {
    // Tests may reach anywhere to set things up; they are checked by tsc, not here.
    exclude: { path: '(?:\\.test\\.ts$|(?:^|/)test/)' },
    // Parse with the TypeScript API and keep imports that tsc would erase
    // (type-only ones): the point of checking the sources (see the top).
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
    moduleSystems: ['es6', 'cjs'],
    // We are an ESM package: resolve npm packages as Node's `import` does.
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'node', 'default'],
      mainFields: ['module', 'main'],
    },
    // Only what the rules need: makes the run fast.
    skipAnalysisNotInRules: true,
  },
};
