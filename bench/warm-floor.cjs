#!/usr/bin/env node
// The least a Node process does for a fully cached build (issue 18's warm cell):
// - read the Dockerfile;
// - lstat every file of the context (what a stat cache needs to know a COPY's
//   sources are unchanged);
// - GET the first base's tag manifest over plain HTTP (no ping, no auth, no TLS)
//   and hash it: BuildKit resolves a tag on every build, and so do we;
// - read one cache record per instruction from a buildlite state root and stat
//   every blob they name, once;
// - write the tag into the root's images.json, fsynced, as a build that names
//   an image must;
// - print a line per instruction.
// The registry request runs beside the local work. No parsing beyond the
// first FROM, no cache keys, no checks, no retries: not a tool, a floor.
//
// Usage (after a build of DOCKERFILE in CONTEXT into ROOT, tagged REF):
//   node bench/warm-floor.cjs ROOT HOST:PORT/NAME:TAG DOCKERFILE CONTEXT
//   hyperfine -N 'node -e 0' 'node bench/warm-floor.cjs ROOT REF DF CTX' \
//     'node dist/bundle/main.js build --root ROOT -f DF -t REF CTX'
// CommonJS on purpose, as the other floors: an ESM entry costs Node's ESM loader.
'use strict';
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { taggedImage } = require('./lib/floor-ref.cjs');

const { root, local, rest } = taggedImage('warm-floor.cjs ROOT HOST:PORT/NAME:TAG DOCKERFILE CONTEXT');
const [dockerfile, context] = rest;
if (!dockerfile || !context) {
  process.stderr.write('usage: warm-floor.cjs ROOT HOST:PORT/NAME:TAG DOCKERFILE CONTEXT\n');
  process.exit(2);
}
const text = fs.readFileSync(dockerfile, 'utf8');
const instructions = text.split('\n').filter((l) => /^[A-Za-z]+\s/.test(l));
const base = /^FROM\s+(\S+)/im.exec(text)[1];
const slash = base.indexOf('/');
const colon = base.lastIndexOf(':');
const [bhost, bport] = base.slice(0, slash).split(':');

const resolved = new Promise((resolve, reject) => {
  const req = http.request(
    {
      host: bhost,
      port: Number(bport),
      path: `/v2/${base.slice(slash + 1, colon)}/manifests/${base.slice(colon + 1)}`,
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json' },
    },
    (res) => {
      const h = createHash('sha256');
      res.on('data', (b) => h.update(b));
      res.on('end', () => resolve(`sha256:${h.digest('hex')}`));
    },
  );
  req.on('error', reject);
  req.end();
});

const walk = (dir) => {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    fs.lstatSync(p);
    if (e.isDirectory()) walk(p);
  }
};
walk(context);

const recordsDir = path.join(root, 'cache', 'records');
const blobs = new Set();
for (const f of fs.readdirSync(recordsDir).slice(0, instructions.length)) {
  for (const l of JSON.parse(fs.readFileSync(path.join(recordsDir, f), 'utf8')).layers) blobs.add(l.digest);
}
for (const d of blobs) fs.statSync(path.join(root, 'content', 'blobs', 'sha256', d.slice('sha256:'.length)));

resolved.then(
  (digest) => {
    const file = path.join(root, 'images.json');
    const images = JSON.parse(fs.readFileSync(file, 'utf8'));
    const tmp = `${file}.floor-${process.pid}`;
    const fd = fs.openSync(tmp, 'w', 0o600);
    fs.writeSync(fd, JSON.stringify(images));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
    process.stdout.write(`${instructions.map((l, i) => `#${i + 1} ${l}\n#${i + 1} CACHED\n`).join('')}base ${digest}\nimage ${local.digest}\n`);
  },
  (err) => {
    process.stderr.write(`${err.message}\n`);
    process.exitCode = 1;
  },
);
