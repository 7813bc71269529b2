import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Writable } from 'node:stream';
import tar from 'tar-stream';

/**
 * An independent check of an OCI image layout tar (image-spec v1.1
 * image-layout.md, image-index.md, manifest.md, config.md, descriptor.md).
 * Written from the spec, not from our exporter, so it can catch it lying.
 */

const MT = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layers: [
    'application/vnd.oci.image.layer.v1.tar',
    'application/vnd.oci.image.layer.v1.tar+gzip',
    'application/vnd.oci.image.layer.v1.tar+zstd',
    'application/vnd.oci.image.layer.nondistributable.v1.tar',
    'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  ],
} as const;

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
// image-spec annotations.md: the ref.name grammar.
const REF_NAME_RE = /^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:\/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$/;
const RFC3339_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

interface Entry {
  readonly size: number;
  readonly sha256: string;
  /** sha256 of the gunzipped bytes, when the entry is gzip. */
  readonly gunzipSha256?: string;
  /** The bytes, for entries small enough to be JSON documents. */
  readonly body?: Buffer;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string };
}

export interface ValidatedImage {
  readonly manifestDigest: string;
  readonly refName?: string;
  readonly manifest: { config: Descriptor; layers: Descriptor[] };
  readonly config: {
    created?: string;
    architecture: string;
    os: string;
    config?: Record<string, unknown>;
    rootfs: { type: string; diff_ids: string[] };
    history?: { created?: string; created_by?: string; empty_layer?: boolean }[];
  };
}

export interface OciLayoutReport {
  /** Every broken invariant, in words; empty for a valid layout. */
  readonly errors: string[];
  readonly images: ValidatedImage[];
  /** Blobs no descriptor refers to (allowed, but worth knowing). */
  readonly unreferenced: string[];
}

const SMALL = 4 << 20;

async function readEntries(file: string, errors: string[]): Promise<Map<string, Entry>> {
  const entries = new Map<string, Entry>();
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    const name = header.name.replace(/^\.\//, '');
    if (header.type === 'directory') {
      stream.resume();
      stream.on('end', next);
      return;
    }
    if (header.type !== 'file') errors.push(`${name}: a ${header.type} entry; a layout holds regular files and directories only`);
    if (name.startsWith('/') || name.split('/').includes('..')) errors.push(`${name}: an entry name outside the layout`);
    if (entries.has(name)) errors.push(`${name}: appears twice in the tar`);
    const hash = createHash('sha256');
    const chunks: Buffer[] = [];
    let size = 0;
    let gz: { hash: ReturnType<typeof createHash>; done: Promise<void>; write: (b: Buffer) => void; end: () => void } | undefined;
    let first = true;
    stream.on('data', (chunk: unknown) => {
      const c = chunk as Buffer;
      if (first) {
        first = false;
        if (c[0] === 0x1f && c[1] === 0x8b) {
          const h = createHash('sha256');
          const gunzip = createGunzip();
          const done = pipeline(gunzip, new Writable({ write: (b: Buffer, _e, cb) => (h.update(b), cb()) })).catch(() => undefined);
          gz = { hash: h, done, write: (b) => gunzip.write(b), end: () => gunzip.end() };
        }
      }
      hash.update(c);
      gz?.write(c);
      size += c.length;
      if (size <= SMALL) chunks.push(c);
    });
    stream.on('end', () => {
      const finish = async () => {
        let gunzipSha256: string | undefined;
        if (gz) {
          gz.end();
          await gz.done;
          gunzipSha256 = gz.hash.digest('hex');
        }
        entries.set(name, {
          size,
          sha256: hash.digest('hex'),
          ...(gunzipSha256 ? { gunzipSha256 } : {}),
          ...(size <= SMALL ? { body: Buffer.concat(chunks) } : {}),
        });
      };
      finish().then(() => next(), next);
    });
  });
  await pipeline(createReadStream(file), extract);
  return entries;
}

function checkDescriptor(d: unknown, where: string, errors: string[]): d is Descriptor {
  const x = d as Partial<Descriptor> | null;
  if (!x || typeof x !== 'object') {
    errors.push(`${where}: not a descriptor object`);
    return false;
  }
  let ok = true;
  if (typeof x.mediaType !== 'string' || !/^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/i.test(x.mediaType)) {
    errors.push(`${where}: mediaType ${JSON.stringify(x.mediaType)} is not a media type`);
    ok = false;
  }
  if (typeof x.digest !== 'string' || !DIGEST_RE.test(x.digest)) {
    errors.push(`${where}: digest ${JSON.stringify(x.digest)} is not sha256:<64 hex>`);
    ok = false;
  }
  if (typeof x.size !== 'number' || !Number.isSafeInteger(x.size) || x.size < 0) {
    errors.push(`${where}: size ${JSON.stringify(x.size)} is not a non-negative integer`);
    ok = false;
  }
  if (x.annotations !== undefined && (typeof x.annotations !== 'object' || Object.values(x.annotations).some((v) => typeof v !== 'string'))) {
    errors.push(`${where}: annotations must map strings to strings`);
  }
  return ok;
}

/** The blob a descriptor names: present, of its size, with its digest. */
function blobOf(entries: Map<string, Entry>, d: Descriptor, where: string, errors: string[], used: Set<string>): Entry | undefined {
  const name = `blobs/sha256/${d.digest.slice('sha256:'.length)}`;
  const e = entries.get(name);
  used.add(name);
  if (!e) {
    errors.push(`${where}: blob ${d.digest} is missing`);
    return undefined;
  }
  if (e.sha256 !== d.digest.slice(7)) errors.push(`${where}: blob ${name} hashes to sha256:${e.sha256}`);
  if (e.size !== d.size) errors.push(`${where}: blob ${d.digest} is ${e.size} bytes, the descriptor says ${d.size}`);
  return e;
}

function json<T>(e: Entry | undefined, where: string, errors: string[]): T | undefined {
  if (!e) return undefined;
  if (!e.body) {
    errors.push(`${where}: too large for a JSON document`);
    return undefined;
  }
  try {
    return JSON.parse(e.body.toString('utf8')) as T;
  } catch {
    errors.push(`${where}: not JSON`);
    return undefined;
  }
}

export async function validateOciLayoutTar(file: string): Promise<OciLayoutReport> {
  const errors: string[] = [];
  const images: ValidatedImage[] = [];
  const entries = await readEntries(file, errors);
  const used = new Set<string>(['oci-layout', 'index.json']);

  const layout = json<{ imageLayoutVersion?: unknown }>(entries.get('oci-layout'), 'oci-layout', errors);
  if (!entries.has('oci-layout')) errors.push('oci-layout: missing');
  else if (layout?.imageLayoutVersion !== '1.0.0') errors.push(`oci-layout: imageLayoutVersion is ${JSON.stringify(layout?.imageLayoutVersion)}, want "1.0.0"`);

  if (!entries.has('index.json')) errors.push('index.json: missing');
  const index = json<{ schemaVersion?: unknown; mediaType?: unknown; manifests?: unknown }>(entries.get('index.json'), 'index.json', errors);
  if (index) {
    if (index.schemaVersion !== 2) errors.push(`index.json: schemaVersion is ${JSON.stringify(index.schemaVersion)}, want 2`);
    if (index.mediaType !== undefined && index.mediaType !== MT.index) errors.push(`index.json: mediaType is ${JSON.stringify(index.mediaType)}`);
    if (!Array.isArray(index.manifests) || index.manifests.length === 0) errors.push('index.json: manifests must be a non-empty array');
    for (const [i, d] of (Array.isArray(index.manifests) ? index.manifests : []).entries()) {
      const where = `index.json manifests[${i}]`;
      if (!checkDescriptor(d, where, errors)) continue;
      const refName = d.annotations?.['org.opencontainers.image.ref.name'];
      if (refName !== undefined && !REF_NAME_RE.test(refName)) errors.push(`${where}: ref.name ${JSON.stringify(refName)} breaks the annotation's grammar`);
      if (d.mediaType !== MT.manifest) {
        errors.push(`${where}: mediaType ${d.mediaType}; this validator expects image manifests`);
        continue;
      }
      const m = json<{ schemaVersion?: unknown; mediaType?: unknown; config?: unknown; layers?: unknown }>(blobOf(entries, d, where, errors, used), `${where} manifest`, errors);
      if (!m) continue;
      const mw = `manifest ${d.digest.slice(0, 19)}`;
      if (m.schemaVersion !== 2) errors.push(`${mw}: schemaVersion is ${JSON.stringify(m.schemaVersion)}, want 2`);
      if (m.mediaType !== undefined && m.mediaType !== d.mediaType) errors.push(`${mw}: mediaType ${JSON.stringify(m.mediaType)} differs from its descriptor's ${d.mediaType}`);
      if (!checkDescriptor(m.config, `${mw} config`, errors)) continue;
      const cd = m.config;
      if (cd.mediaType !== MT.config) errors.push(`${mw} config: mediaType ${cd.mediaType}, want ${MT.config}`);
      if (!Array.isArray(m.layers)) {
        errors.push(`${mw}: layers must be an array`);
        continue;
      }
      const layers: Descriptor[] = [];
      const layerEntries: (Entry | undefined)[] = [];
      for (const [j, l] of m.layers.entries()) {
        if (!checkDescriptor(l, `${mw} layers[${j}]`, errors)) continue;
        if (!(MT.layers as readonly string[]).includes(l.mediaType)) errors.push(`${mw} layers[${j}]: mediaType ${l.mediaType} is not an OCI layer type`);
        layers.push(l);
        layerEntries.push(blobOf(entries, l, `${mw} layers[${j}]`, errors, used));
      }
      const config = json<ValidatedImage['config']>(blobOf(entries, cd, `${mw} config`, errors, used), `${mw} config`, errors);
      if (!config) continue;
      const cw = `config ${cd.digest.slice(0, 19)}`;
      if (typeof config.architecture !== 'string' || !config.architecture) errors.push(`${cw}: architecture is required`);
      if (typeof config.os !== 'string' || !config.os) errors.push(`${cw}: os is required`);
      if (d.platform && (d.platform.architecture !== config.architecture || d.platform.os !== config.os)) errors.push(`${where}: platform differs from the config's`);
      if (config.created !== undefined && !RFC3339_RE.test(config.created)) errors.push(`${cw}: created ${JSON.stringify(config.created)} is not RFC 3339`);
      if (config.rootfs?.type !== 'layers') errors.push(`${cw}: rootfs.type must be "layers"`);
      const diffIds = config.rootfs?.diff_ids ?? [];
      if (diffIds.length !== m.layers.length) errors.push(`${cw}: ${diffIds.length} diff_ids for ${m.layers.length} layers`);
      for (const [j, e] of layerEntries.entries()) {
        const want = diffIds[j];
        const l = layers[j]!;
        if (!e || want === undefined) continue;
        const got = l.mediaType.endsWith('+gzip') ? e.gunzipSha256 : l.mediaType.endsWith('.tar') ? e.sha256 : undefined;
        if (l.mediaType.endsWith('+gzip') && !e.gunzipSha256) errors.push(`${mw} layers[${j}]: says gzip but is not`);
        else if (got !== undefined && `sha256:${got}` !== want) errors.push(`${cw}: diff_ids[${j}] is ${want}, the layer's uncompressed digest is sha256:${got}`);
      }
      if (config.history !== undefined) {
        const nonEmpty = config.history.filter((h) => !h.empty_layer).length;
        if (nonEmpty !== m.layers.length) errors.push(`${cw}: ${nonEmpty} non-empty history entries for ${m.layers.length} layers`);
        for (const [j, h] of config.history.entries()) {
          if (h.created !== undefined && !RFC3339_RE.test(h.created)) errors.push(`${cw}: history[${j}].created ${JSON.stringify(h.created)} is not RFC 3339`);
        }
      }
      images.push({ manifestDigest: d.digest, ...(refName !== undefined ? { refName } : {}), manifest: { config: cd, layers }, config });
    }
  }
  for (const name of entries.keys()) {
    if (!name.startsWith('blobs/') && !used.has(name)) errors.push(`${name}: not part of an image layout`);
    if (name.startsWith('blobs/') && !/^blobs\/sha256\/[a-f0-9]{64}$/.test(name)) errors.push(`${name}: not a blobs/<alg>/<encoded> path`);
  }
  const unreferenced = [...entries.keys()].filter((n) => n.startsWith('blobs/') && !used.has(n));
  return { errors, images, unreferenced };
}
