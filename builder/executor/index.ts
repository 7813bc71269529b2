export type { ExecOptions, ExecResult, Executor, ProcessSpec, StepLimits } from './executor.js';
export { detectCgroups, unenforced, type CgroupHost, type CgroupSupport } from './cgroup-support.js';
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
export { buildSpec, CPU_PERIOD_US, DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS, STEP_LIMIT_DEFAULTS, type RuntimeSpec, type SpecInput } from './spec.js';
export { seccompProfile, type SeccompProfile } from './seccomp.js';
export { stepLimitsOf } from './checks.js';
