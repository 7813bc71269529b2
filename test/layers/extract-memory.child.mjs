// Child process of extract-memory.test.ts: applies a generated layer of N
// entries (empty files in directories of 1,000) to DEST with the built
// extractor (dist/, which `npm test` builds first) and prints its peak RSS
// before and after, so the parent can bound what extraction adds. The tar is
// generated as it is read (a stream with backpressure), never held whole.
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { Extractor } from '../../dist/builder/layers/extract.js';
import { readTar } from '../../dist/builder/layers/tar-reader.js';
import { encodeHeader, END_OF_ARCHIVE } from '../../dist/builder/layers/tar-format.js';

function peakRss() {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

function* entries(n) {
  const h = { uid: 0, gid: 0, size: 0, mtime: 1704067200 };
  const batch = [];
  for (let i = 0; i < n; i++) {
    if (i % 1000 === 0) batch.push(encodeHeader({ ...h, name: `d${i / 1000}/`, type: 'dir', mode: 0o755 }));
    batch.push(encodeHeader({ ...h, name: `d${Math.floor(i / 1000)}/f${i}`, type: 'file', mode: 0o644 }));
    if (batch.length >= 256) yield Buffer.concat(batch.splice(0));
  }
  batch.push(END_OF_ARCHIVE);
  yield Buffer.concat(batch);
}

const [dest, count] = process.argv.slice(2);
const before = peakRss();
const t0 = Date.now();
const result = await new Extractor(dest, { whiteouts: true }).run(readTar(Readable.from(entries(Number(count)), { objectMode: false })));
process.stdout.write(`${JSON.stringify({ entries: result.entries, before, after: peakRss(), seconds: (Date.now() - t0) / 1000, mem: process.memoryUsage() })}\n`);
