export { Solver } from './solver.js';
export { ContextHasher } from './context-sums.js';
export { DiskBudget } from './budget.js';
export { chainUnpacked } from './materialize.js';
export { ExecError } from './errors.js';
export type { ImageFetcher, HttpFetcher, GitFetcher, GitAuth, ResolvedGit, FetchedFile, SolverDeps, SolveOptions, VertexResult } from './types.js';
export { checkGraphGrants, grantRefusal, type Grants } from './grants.js';
export { checkSshAgents } from './ssh-check.js';
export { detectArchive, extractArchive } from './file-ops/index.js';
