'use strict';
// What both floor scripts (bench/repush-floor.cjs, bench/push-floor.cjs) start
// from: ROOT and HOST:PORT/NAME:TAG from argv, and the tag's descriptor in the
// state root's images.json. Exits with a usage line or "not in ROOT" otherwise.
const { readFileSync } = require('node:fs');
const path = require('node:path');

function taggedImage(usage) {
  const [root, ref, ...rest] = process.argv.slice(2);
  if (!root || !ref) {
    process.stderr.write(`usage: ${usage}\n`);
    process.exit(2);
  }
  const slash = ref.indexOf('/');
  const colon = ref.lastIndexOf(':');
  const [host, port] = ref.slice(0, slash).split(':');
  const local = JSON.parse(readFileSync(path.join(root, 'images.json'), 'utf8'))[ref];
  if (!local) {
    process.stderr.write(`${ref}: not in ${root}\n`);
    process.exit(1);
  }
  return { root, host, port: Number(port), name: ref.slice(slash + 1, colon), tag: ref.slice(colon + 1), local, rest };
}

module.exports = { taggedImage };
