import { createReadStream } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { BlobProvider } from '../core/content.js';
import { sha256, type Digest } from '../core/digest.js';
import { CodedError } from '../core/errors.js';
import { MediaType, type Descriptor } from '../core/oci.js';
import { parseReference, RegistryClient, RegistryError, type Reference } from '../registry-client/index.js';
import type { BlobUpload, ServiceStore, ServiceStoreOptions, StoredBlob, StoredKind, StoreUseIndex } from './service-store.js';
import { SpooledUpload, sweepStaleUploads } from './upload.js';

/** OCI 1.1's empty config: the artifact manifest needs one, and every registry already knows these two bytes. */
const EMPTY_CONFIG = Buffer.from('{}');
const EMPTY_DESC: Descriptor = { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(EMPTY_CONFIG), size: EMPTY_CONFIG.length };

const ARTIFACT: Record<StoredKind, { artifactType: string; layerType: string; tag: string }> = {
  context: { artifactType: 'application/vnd.buildlite.context.v1', layerType: 'application/vnd.buildlite.context.v1.tar', tag: 'context-' },
  log: { artifactType: 'application/vnd.buildlite.steplog.v1', layerType: 'text/plain; charset=utf-8', tag: 'log-' },
};

/**
 * The service store in a registry repository, for an API and workers that
 * share no disk. Each blob is a one-layer OCI artifact under the tag
 * `<kind>-<hex>`: the tag keeps the blob from registry garbage collection and
 * makes `stat` one small manifest GET. Uploads are spooled to a local temp
 * file (the digest must be known before the PUT) and pushed with HEAD first,
 * so bytes the registry already holds are never sent twice.
 *
 * Retention deletes a tag's manifest by digest; the blobs stay until the
 * registry's own garbage collection (`registry garbage-collect`) reclaims them.
 */
export class RegistryStore implements ServiceStore {
  private constructor(
    private readonly repo: Reference,
    private readonly client: RegistryClient,
    private readonly spoolDir: string,
    private readonly index: StoreUseIndex | undefined,
    private readonly now: () => number,
  ) {}

  static fromSpec(hostRepo: string, opts: ServiceStoreOptions): RegistryStore {
    let repo: Reference;
    try {
      repo = parseReference(hostRepo);
    } catch (err) {
      throw new CodedError('INVALID_OPTION', `--contexts registry://${hostRepo}: want registry://HOST[:PORT]/REPOSITORY (${(err as Error).message})`);
    }
    // parseReference fills in docker.io and `latest`: a store names its registry and nothing else.
    if (repo.digest || /[:@]/.test(hostRepo.slice(hostRepo.indexOf('/') + 1)) || !hostRepo.includes('/')) {
      throw new CodedError('INVALID_OPTION', `--contexts registry://${hostRepo}: want registry://HOST[:PORT]/REPOSITORY, without a tag or digest`);
    }
    const client = new RegistryClient({ insecureRegistries: opts.insecureRegistries ?? [] });
    return new RegistryStore({ registry: repo.registry, repository: repo.repository }, client, path.join(opts.tmpDir, 'store-uploads'), opts.useIndex, opts.now ?? Date.now);
  }

  get location(): string {
    return `registry://${this.repo.registry}/${this.repo.repository}`;
  }

  async init(): Promise<void> {
    await sweepStaleUploads(this.spoolDir);
  }

  private ref(tag?: string): Reference {
    return { ...this.repo, ...(tag ? { tag } : {}) };
  }

  private tagOf(kind: StoredKind, digest: Digest): string {
    return `${ARTIFACT[kind].tag}${digest.slice('sha256:'.length)}`;
  }

  async stat(kind: StoredKind, digest: Digest, signal?: AbortSignal): Promise<number | undefined> {
    return (await this.layerOf(kind, digest, signal))?.size;
  }

  private async layerOf(kind: StoredKind, digest: Digest, signal?: AbortSignal): Promise<Descriptor | undefined> {
    let m;
    try {
      m = await this.client.fetchManifest(this.ref(this.tagOf(kind, digest)), signal);
    } catch (err) {
      if (err instanceof RegistryError && err.status === 404) return undefined;
      throw err;
    }
    const layer = (m.parsed as { layers?: Descriptor[] }).layers?.[0];
    // A tag of ours names exactly one layer with the tagged digest; anything else is not our blob.
    if (!layer || layer.digest !== digest || !Number.isSafeInteger(layer.size)) return undefined;
    return layer;
  }

  ingest(kind: StoredKind, maxBytes: number): Promise<BlobUpload> {
    return SpooledUpload.create(this.spoolDir, maxBytes, kind === 'context' ? 'build context' : 'step log', (tmp, blob) => this.push(kind, tmp, blob));
  }

  private async push(kind: StoredKind, file: string, blob: StoredBlob): Promise<void> {
    const layer: Descriptor = { mediaType: ARTIFACT[kind].layerType, digest: blob.digest, size: blob.size };
    const manifest = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, artifactType: ARTIFACT[kind].artifactType, config: EMPTY_DESC, layers: [layer] }),
    );
    const provider: BlobProvider = {
      open: async (d) => (d === EMPTY_DESC.digest ? Readable.from([EMPTY_CONFIG]) : createReadStream(file)),
      stat: async (d) => (d === EMPTY_DESC.digest ? EMPTY_DESC : d === blob.digest ? blob : undefined),
    };
    // pushImage HEADs each blob first: a context the registry holds already is not uploaded again.
    await this.client.pushImage(this.ref(this.tagOf(kind, blob.digest)), { manifest, mediaType: MediaType.OciManifest, blobs: [EMPTY_DESC, layer] }, provider);
    await this.index?.mark(kind, blob.digest, this.now());
  }

  async touch(kind: StoredKind, digest: Digest, signal?: AbortSignal): Promise<number | undefined> {
    const layer = await this.layerOf(kind, digest, signal);
    if (layer) await this.index?.mark(kind, digest, this.now());
    return layer?.size;
  }

  async *unusedSince(kind: StoredKind, cutoffMs: number): AsyncIterable<Digest> {
    if (this.index) yield* this.index.usedAtOrBefore(kind, cutoffMs);
  }

  async removeIfUnused(kind: StoredKind, digest: Digest, cutoffMs: number, signal?: AbortSignal): Promise<boolean> {
    if (!this.index) return false;
    const last = await this.index.lastUse(kind, digest);
    if (last === undefined || last > cutoffMs) return false;
    const tagged = this.ref(this.tagOf(kind, digest));
    let m;
    try {
      m = await this.client.fetchManifest(tagged, signal);
    } catch (err) {
      if (!(err instanceof RegistryError && err.status === 404)) throw err;
      await this.index.forget(kind, digest);
      return false;
    }
    // Deleting by digest also drops the tag (and any other tag on the same manifest, all of them ours).
    await this.client.deleteManifest({ ...this.repo, digest: m.digest }, signal);
    const again = await this.index.lastUse(kind, digest);
    if (again !== undefined && again > cutoffMs) {
      // A touch raced the delete and told its caller "stored": tag it again (the blobs are still there).
      await this.client.putManifest(tagged, m.bytes, m.mediaType, signal);
      return false;
    }
    await this.index.forget(kind, digest);
    return true;
  }

  async open(kind: StoredKind, digest: Digest, signal?: AbortSignal): Promise<Readable> {
    const layer = await this.layerOf(kind, digest, signal);
    if (!layer) throw new CodedError('NOT_FOUND', `${kind} ${digest} is not stored in ${this.location}`, { retryable: false });
    // fetchBlob verifies size and digest while streaming.
    return this.client.fetchBlob(this.ref(), layer, signal);
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
