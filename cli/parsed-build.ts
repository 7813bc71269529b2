import type { BuildRequest } from '../core/build.js';
import type { BuildLimits } from '../core/limits.js';
import type { NetTimeouts } from '../core/net-faults.js';
import type { SshSpec } from './ssh-agents.js';

/**
 * A parsed `buildlite build` command line: what commands/build.ts produces and
 * the two ways to run it (local-build.ts, remote-build.ts) and metadata.ts
 * consume. Its own module, so the runners depend on the command's result and
 * not on the command that loads them.
 */
export interface ParsedBuild {
  readonly request: BuildRequest;
  readonly secrets: Map<string, Buffer>;
  /** `--ssh`: agents (or key files) of this machine to forward, by id. Embedded builds only. */
  readonly ssh: readonly SshSpec[];
  /** CONTEXT is a URL (git, or a tarball or Dockerfile over http): fetched by the builder, the Dockerfile (`file`) read from inside it. */
  readonly remoteContext?: { readonly url: string; readonly file: string };
  readonly root: string;
  readonly progress: 'auto' | 'tty' | 'plain' | 'json' | 'quiet';
  readonly iidfile?: string;
  readonly metadataFile?: string;
  readonly insecure: string[];
  /** A build service (`--server`, else BUILDLITE_SERVER): the build runs there. */
  readonly server?: string;
  readonly token?: string;
  /** Remote only: submit, print the build id, leave the build running. */
  readonly detach: boolean;
  readonly debugCache: boolean;
  /** `--check`: run the build checks only (cli/check.ts). */
  readonly check: boolean;
  /** The operator's half of the network.host grant (embedded mode: whoever runs the CLI). */
  readonly allowHostNetwork: boolean;
  /** The operator's half of the security.insecure grant (embedded mode: whoever runs the CLI). */
  readonly allowSecurityInsecure: boolean;
  /** Embedded mode: ADD <url> may reach loopback, private and link-local addresses (the developer's explicit opt-in). */
  readonly allowPrivateUrls: boolean;
  /** Embedded mode: stall limits of registry requests and URL fetches (unset: the builder's defaults). */
  readonly timeouts?: Partial<NetTimeouts>;
  /** Embedded mode: this build's limits (`--memory 2GiB`...), over the defaults; a build service has its operator's. */
  readonly limits: Partial<BuildLimits>;
}
