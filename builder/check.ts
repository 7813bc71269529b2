import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { BuildRequest } from '../core/build.js';
import type { NetTimeouts } from '../core/net-faults.js';
import type { Platform } from '../core/oci.js';
import { targetPlatforms } from '../core/platform.js';
import { LocalContentStore } from '../cache/index.js';
import { RegistryClient } from '../registry-client/index.js';
import { checkFailure, convertDockerfile, type DockerfileError } from './dockerfile/index.js';
import type { Warning } from './graph/index.js';
import { RegistryImages } from './image-source.js';
import { prepareNamedContexts } from './named-contexts.js';

export interface CheckOptions {
  readonly insecureRegistries?: readonly string[];
  readonly caFile?: string;
  readonly timeouts?: Partial<NetTimeouts>;
  readonly signal?: AbortSignal;
}

export interface CheckResult {
  readonly warnings: readonly Warning[];
  /** Set when `# check=error=true` turns the warnings into a failure. */
  readonly failure?: DockerfileError;
}

/**
 * `build --check` (BuildKit's `--call check`): the build checks of a request,
 * without building. Base images are resolved (their ENV and SHELL decide
 * UndefinedVar and JSONArgsRecommended) but nothing is pulled or run, and no
 * state root is needed. Without --target every stage is checked. A Dockerfile
 * that does not convert throws its DockerfileError, naming the line.
 */
export async function checkDockerfile(req: BuildRequest, opts: CheckOptions = {}): Promise<CheckResult> {
  const registry = new RegistryClient({
    ...(opts.insecureRegistries ? { insecureRegistries: [...opts.insecureRegistries] } : {}),
    ...(opts.caFile ? { caFile: opts.caFile } : {}),
    ...(opts.timeouts ? { timeouts: opts.timeouts } : {}),
  });
  // Named contexts from an OCI layout are imported to be resolved: into a scratch store, gone with the check.
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'buildlite-check-'));
  try {
    // Checks read the Dockerfile as the first platform's build would.
    const platform = targetPlatforms(req.platforms)[0] as Platform;
    const named = await prepareNamedContexts(req.namedContexts ?? {}, { store: new LocalContentStore(scratch), base: new RegistryImages(registry), platform });
    const contextIgnore = 'dir' in req.context ? await readFile(path.join(req.context.dir, '.dockerignore'), 'utf8').catch(() => undefined) : undefined;
    const dockerignore = req.dockerignore ?? contextIgnore;
    const def = await convertDockerfile({
      dockerfile: req.dockerfile,
      fileName: req.dockerfileName ?? 'Dockerfile',
      buildArgs: { ...(req.buildArgs ?? {}) },
      ...(req.target ? { target: req.target } : { allStages: true }),
      platform,
      resolver: named.resolver,
      ...(named.specs.size ? { namedContexts: named.specs } : {}),
      ...(dockerignore !== undefined ? { dockerignore } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const failure = checkFailure(def.warnings);
    return { warnings: def.warnings, ...(failure ? { failure } : {}) };
  } finally {
    await registry.close();
    await rm(scratch, { recursive: true, force: true });
  }
}
