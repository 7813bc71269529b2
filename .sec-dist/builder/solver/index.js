export { Solver } from './solver.js';
export { ContextHasher } from './context-sums.js';
export { ExecError } from './errors.js';
//# sourceMappingURL=index.js.map