// Child process of extract-memory.test.ts: applies one gzip layer file to
// DEST with the built extractor (dist/, which `npm test` builds first), as a
// base layer is applied from the content store, and prints its peak RSS.
import { createReadStream, readFileSync } from 'node:fs';
import { extractTar } from '../../dist/builder/layers/index.js';

function peakRss() {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

const [layer, dest] = process.argv.slice(2);
const { entries } = await extractTar(createReadStream(layer), dest, { whiteouts: true });
process.stdout.write(`${JSON.stringify({ entries, peakRss: peakRss() })}\n`);
