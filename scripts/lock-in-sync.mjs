// Exit 0 when node_modules holds exactly what package-lock.json asks for, 1 when
// `npm ci` is needed. npm writes what it installed to node_modules/.package-lock.json;
// packages the lock marks optional may be absent (other platforms' binaries).
//   node scripts/lock-in-sync.mjs [DIR]   DIR: the package to check (default: .)
import { readFileSync } from 'node:fs';
import path from 'node:path';

const dir = process.argv[2] ?? '.';

function load(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

const lock = load(path.join(dir, 'package-lock.json'));
const installed = load(path.join(dir, 'node_modules/.package-lock.json'));
if (!lock || !installed) process.exit(1);

const want = lock.packages ?? {};
const have = installed.packages ?? {};
const problems = [];
for (const [name, entry] of Object.entries(want)) {
  if (name === '' || entry.link) continue;
  const got = have[name];
  if (!got) {
    if (!entry.optional && !entry.devOptional) problems.push(`${name}: missing`);
  } else if (got.version !== entry.version) {
    problems.push(`${name}: have ${got.version}, lock wants ${entry.version}`);
  }
}
for (const name of Object.keys(have)) {
  if (!(name in want)) problems.push(`${name}: installed but not in the lock`);
}
if (problems.length > 0) {
  console.log(`node_modules is out of date (${problems.length} differences, e.g. ${problems[0]})`);
  process.exit(1);
}
