import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Builder } from '../../builder/index.js';
import { pushBusyboxBase } from './base-image.js';
import { unmountAll } from './build-driver.js';
import { startRegistry, type TestRegistry } from './registry.js';

/** A registry holding the busybox base, a temp dir, and a builder whose root is in it. */
export interface BuilderEnv {
  readonly registry: TestRegistry;
  readonly tmp: string;
  readonly builder: Builder;
  /** `HOST/library/busybox:latest`. */
  readonly base: string;
  /** Closes the builder, stops the registry, unmounts and removes the temp dir. */
  stop(): Promise<void>;
}

export async function startBuilderEnv(prefix: string): Promise<BuilderEnv> {
  const registry = await startRegistry();
  const tmp = await mkdtemp(path.join(os.tmpdir(), `bl-${prefix}-`));
  let builder: Builder | undefined;
  const stop = async () => {
    await builder?.close();
    await registry.stop();
    await unmountAll(tmp);
    await rm(tmp, { recursive: true, force: true });
  };
  try {
    await pushBusyboxBase(registry.host);
    builder = await Builder.open({ root: path.join(tmp, 'root'), parallelism: 2 });
  } catch (err) {
    await stop();
    throw err;
  }
  return { registry, tmp, builder, base: `${registry.host}/library/busybox:latest`, stop };
}
