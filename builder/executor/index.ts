export type { ExecOptions, ExecResult, Executor, ProcessSpec, SandboxLimits } from './executor.js';
export { RuncExecutor, type RuncExecutorOptions } from './runc.js';
export { ExecCancelledError, ExecutorOptionError, SandboxError, SandboxPermissionError } from './errors.js';
export {
  parseGroup,
  parsePasswd,
  readAccountFile,
  resolveChown,
  resolveChownIn,
  resolveUser,
  resolveUserIn,
  UserError,
  type GroupEntry,
  type PasswdEntry,
  type ResolvedUser,
} from './user.js';
export { buildSpec, DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS, SANDBOX_DEFAULTS, type RuntimeSpec, type SpecInput } from './spec.js';
export { seccompProfile, type SeccompProfile } from './seccomp.js';
export { effectiveCapabilities, grantInsecure, type InsecureGrant } from './insecure.js';
