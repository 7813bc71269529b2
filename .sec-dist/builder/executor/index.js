export { RuncExecutor } from './runc.js';
export { ExecCancelledError, ExecutorOptionError, SandboxError, SandboxPermissionError } from './errors.js';
export { parseGroup, parsePasswd, readAccountFile, resolveChown, resolveChownIn, resolveUser, resolveUserIn, UserError, } from './user.js';
export { buildSpec, DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS, SANDBOX_DEFAULTS } from './spec.js';
export { seccompProfile } from './seccomp.js';
//# sourceMappingURL=index.js.map