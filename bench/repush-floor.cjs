#!/usr/bin/env node
// The least a Node process can do for a re-push of an unchanged image (issue 18):
// read the tag's descriptor from a buildlite state root, send one HEAD for the
// tag's manifest over plain HTTP (no ping, no auth, no TLS), and compare the
// registry's Docker-Content-Digest with ours. No retries, no checks, no error
// reporting: not a tool, a floor. Anything that re-pushes from Node takes at
// least this long; `buildlite push` does more (a ping, auth, a check of every
// blob when the manifest differs).
//
// Usage (after a build and a push of REF from ROOT):
//   node bench/repush-floor.cjs ROOT HOST:PORT/NAME:TAG
//   hyperfine -N 'node -e 0' 'node bench/repush-floor.cjs ROOT REF' \
//     'node dist/bundle/main.js push --root ROOT REF'
// CommonJS on purpose: an ESM entry costs Node's ESM loader (~12 ms here).
'use strict';
const http = require('node:http');
const { taggedImage } = require('./lib/floor-ref.cjs');

const { host, port, name, tag, local } = taggedImage('repush-floor.cjs ROOT HOST:PORT/NAME:TAG');
const req = http.request(
  { host, port, method: 'HEAD', path: `/v2/${name}/manifests/${tag}`, headers: { accept: local.mediaType } },
  (res) => {
    res.resume();
    const remote = res.headers['docker-content-digest'];
    process.stdout.write(remote === local.digest ? `unchanged ${remote}\n` : `differs: ${remote} != ${local.digest}\n`);
    process.exitCode = remote === local.digest ? 0 : 1;
  },
);
req.on('error', (err) => {
  process.stderr.write(`${err.message}\n`);
  process.exitCode = 1;
});
req.end();
