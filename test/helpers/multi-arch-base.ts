import { access } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Digest } from '../../core/digest.js';
import { MediaType, type Platform } from '../../core/oci.js';
import { RegistryClient } from '../../registry-client/index.js';
import { pushImageOf } from './base-image.js';
import { makeBusyboxRootfs } from './busybox-rootfs.js';

/**
 * Debian's busybox-static for arm64, which `scripts/provision.sh --test`
 * downloads (BUILDLITE_BUSYBOX_ARM64 overrides): the tests' foreign binary.
 */
export const ARM64_BUSYBOX = process.env.BUILDLITE_BUSYBOX_ARM64 ?? fileURLToPath(new URL('../.fixtures/busybox-arm64', import.meta.url));

export async function arm64Busybox(): Promise<string> {
  try {
    await access(ARM64_BUSYBOX);
  } catch {
    throw new Error(`${ARM64_BUSYBOX} is missing: run bash scripts/provision.sh --test`);
  }
  return ARM64_BUSYBOX;
}

export interface MultiArchBase {
  /** `HOST/REPO:TAG`, an OCI index of the two. */
  readonly ref: string;
  readonly index: Digest;
  readonly amd64: Digest;
  readonly arm64: Digest;
}

/**
 * The busybox base for linux/amd64 and linux/arm64 (each its own Debian
 * busybox-static), pushed as an OCI index; the arm64 entry says `variant: v8`
 * as many public indexes do, so a build asking for `linux/arm64` exercises
 * the match of the two spellings.
 */
export async function pushMultiArchBusybox(registryHost: string, repo = 'library/busybox-multi', tag = 'latest'): Promise<MultiArchBase> {
  const arm64Bin = await arm64Busybox();
  const amd64 = await pushImageOf(registryHost, `${repo}:amd64`, [(d) => makeBusyboxRootfs(d)]);
  const arm64 = await pushImageOf(registryHost, `${repo}:arm64`, [(d) => makeBusyboxRootfs(d, arm64Bin)], { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
  const client = new RegistryClient({});
  try {
    const entry = async (digest: Digest, platform: Platform) => {
      const m = await client.fetchManifest(`${registryHost}/${repo}@${digest}`);
      return { mediaType: MediaType.OciManifest, digest, size: m.bytes.length, platform };
    };
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciIndex,
        manifests: [await entry(amd64, { os: 'linux', architecture: 'amd64' }), await entry(arm64, { os: 'linux', architecture: 'arm64', variant: 'v8' })],
      }),
    );
    const digest = await client.putManifest(`${registryHost}/${repo}:${tag}`, index, MediaType.OciIndex);
    return { ref: `${registryHost}/${repo}:${tag}`, index: digest, amd64, arm64 };
  } finally {
    await client.close();
  }
}
