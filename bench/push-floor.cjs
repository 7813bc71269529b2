#!/usr/bin/env node
// The least a Node process can do to push an image the registry does not hold
// yet (issue 18's push cells): read the tag's manifest from a buildlite state
// root, then for every blob at once one POST (a mount from FROM_REPO when given:
// the registry answers 201 for the blobs it holds there) and, unless mounted,
// one PUT of the blob's bytes; then one PUT of the manifest. That is three
// round trips end to end, the fewest a registry that takes no single-POST
// upload (distribution does not) allows. No existence checks, no retries, no
// auth, no TLS, no limits on concurrency: not a tool, a floor. `buildlite push`
// does more (the tag's GET, a HEAD per blob, at most 4 uploads at once).
//
// Usage (after a build of REF into ROOT; the repository emptied first, as the
// bench's push phase does):
//   node bench/push-floor.cjs ROOT HOST:PORT/NAME:TAG [FROM_REPO]
// CommonJS on purpose: an ESM entry costs Node's ESM loader (~12 ms here).
'use strict';
const { createReadStream, readFileSync, statSync } = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { taggedImage } = require('./lib/floor-ref.cjs');

const { root, host, port, name, tag, local, rest } = taggedImage('push-floor.cjs ROOT HOST:PORT/NAME:TAG [FROM_REPO]');
const from = rest[0];
const blobFile = (digest) => path.join(root, 'content', 'blobs', 'sha256', digest.slice('sha256:'.length));
const manifest = readFileSync(blobFile(local.digest));
const { config, layers } = JSON.parse(manifest.toString('utf8'));
const agent = new http.Agent({ keepAlive: true });

function request(method, urlPath, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, method, path: urlPath, headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res));
    });
    req.on('error', reject);
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else body.pipe(req);
  });
}

async function pushBlob(digest) {
  const q = from ? `?mount=${digest}&from=${from}` : '';
  const started = await request('POST', `/v2/${name}/blobs/uploads/${q}`, { 'content-length': '0' });
  if (started.statusCode === 201) return;
  if (started.statusCode !== 202) throw new Error(`POST ${digest}: ${started.statusCode}`);
  const loc = new URL(started.headers.location, `http://${host}:${port}`);
  loc.searchParams.set('digest', digest);
  const file = blobFile(digest);
  const put = await request(
    'PUT',
    loc.pathname + loc.search,
    { 'content-type': 'application/octet-stream', 'content-length': String(statSync(file).size) },
    createReadStream(file),
  );
  if (put.statusCode !== 201) throw new Error(`PUT ${digest}: ${put.statusCode}`);
}

(async () => {
  await Promise.all([config, ...layers].map((d) => pushBlob(d.digest)));
  const res = await request('PUT', `/v2/${name}/manifests/${tag}`, { 'content-type': local.mediaType, 'content-length': String(manifest.length) }, manifest);
  if (res.statusCode !== 201) throw new Error(`PUT manifest: ${res.statusCode}`);
  agent.destroy();
  process.stdout.write(`pushed ${res.headers['docker-content-digest']}\n`);
})().catch((err) => {
  process.stderr.write(`${err.message}\n`);
  process.exitCode = 1;
});
