/**
 * The choice of backing from `--contexts`: `registry://HOST/REPO` is a
 * registry repository (registry-store.ts), anything else a directory
 * (dir-store.ts).
 */
import path from 'node:path';
import { DirStore } from './dir-store.js';
import { RegistryStore } from './registry-store.js';
import type { ServiceStore, ServiceStoreOptions } from './service-store.js';

const REGISTRY_SCHEME = 'registry://';

/** `registry://HOST/REPO` or a directory path → the store (not yet initialised: call `init`). */
export async function openServiceStore(spec: string, opts: ServiceStoreOptions): Promise<ServiceStore> {
  if (isRegistryStoreSpec(spec)) return RegistryStore.fromSpec(spec.slice(REGISTRY_SCHEME.length), opts);
  return new DirStore(path.resolve(spec), opts.now);
}

export function isRegistryStoreSpec(spec: string): boolean {
  return spec.startsWith(REGISTRY_SCHEME);
}
