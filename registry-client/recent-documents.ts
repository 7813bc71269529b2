import type { Digest } from '../core/digest.js';
import type { Reference } from './reference.js';

/** A document as it was served: its bytes (already verified against their digest) and Content-Type. */
export interface ServedDocument {
  readonly bytes: Buffer;
  readonly contentType?: string | undefined;
}

/**
 * Manifests and configs one client fetched in the last minute, by registry,
 * repository and digest. A build resolves its bases while it converts the
 * Dockerfile and pulls them when a step first needs their files, which asked
 * for the same two documents again (two round trips of every cold build).
 * Kept briefly, not for the client's life: a long-lived worker still asks the
 * registry once per build whether its credentials reach an image. A client
 * has one set of credentials, so what it fetched it may read again.
 */
export class RecentDocuments {
  private readonly docs = new Map<string, ServedDocument & { readonly at: number }>();
  private held = 0;

  constructor(
    private readonly ttlMs = 60_000,
    private readonly maxBytes = 16 << 20,
    private readonly now: () => number = Date.now,
  ) {}

  get(ref: Reference, digest: Digest): ServedDocument | undefined {
    this.expire();
    return this.docs.get(keyOf(ref, digest));
  }

  put(ref: Reference, digest: Digest, doc: ServedDocument): void {
    if (doc.bytes.length > this.maxBytes) return;
    const key = keyOf(ref, digest);
    this.drop(key);
    this.docs.set(key, { ...doc, at: this.now() });
    this.held += doc.bytes.length;
    // Oldest first (a Map iterates in insertion order) until the bytes fit.
    for (const k of this.docs.keys()) {
      if (this.held <= this.maxBytes) break;
      this.drop(k);
    }
  }

  private expire(): void {
    const before = this.now() - this.ttlMs;
    for (const [k, d] of this.docs) {
      if (d.at > before) break;
      this.drop(k);
    }
  }

  private drop(key: string): void {
    const d = this.docs.get(key);
    if (!d) return;
    this.held -= d.bytes.length;
    this.docs.delete(key);
  }
}

function keyOf(ref: Reference, digest: Digest): string {
  return `${ref.registry}/${ref.repository}@${digest}`;
}
