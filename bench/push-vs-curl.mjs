#!/usr/bin/env node
// Issue 5's push benchmark: a 200 MiB blob pushed by buildlite's registry
// client vs a bare curl POST + PUT of the same bytes, to a loopback
// docker-registry, alternating, N runs each; then a re-push of an image whose
// blobs all exist. Prints medians and the ratio. Needs dist/ (npx tsc) and
// docker-registry + curl. Usage: node bench/push-vs-curl.mjs [runs] [MiB]
import { execFileSync, spawn } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const runs = Number(process.argv[2] ?? 5);
const mib = Number(process.argv[3] ?? 200);
const dist = new URL('../dist/', import.meta.url);
const { RegistryClient, parseReference } = await import(new URL('registry-client/index.js', dist).href);
const { LocalContentStore, writeBlob } = await import(new URL('cache/index.js', dist).href);

const tmp = mkdtempSync(path.join(os.tmpdir(), 'bl-pushbench-'));
const port = await new Promise((r) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });
writeFileSync(path.join(tmp, 'reg.yml'), `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${tmp}/data\nhttp:\n  addr: 127.0.0.1:${port}\nlog:\n  level: error\n`);
const reg = spawn('docker-registry', ['serve', path.join(tmp, 'reg.yml')], { stdio: 'ignore' });
try {
  for (let i = 0; i < 50; i++) { try { execFileSync('curl', ['-fsS', `http://127.0.0.1:${port}/v2/`], { stdio: 'ignore' }); break; } catch { await new Promise((r) => setTimeout(r, 100)); } }
  // Incompressible bytes, as a compressed layer is.
  const file = path.join(tmp, 'blob');
  const fd = openSync(file, 'w'); const h = createHash('sha256');
  for (let i = 0; i < mib; i++) { const b = randomBytes(1 << 20); h.update(b); writeSync(fd, b); }
  closeSync(fd);
  const digest = `sha256:${h.digest('hex')}`;
  const size = mib << 20;
  const store = new LocalContentStore(path.join(tmp, 'store'));
  await writeBlob(store, createReadStream(file), { digest, size });
  const client = new RegistryClient({});
  const desc = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size };

  const curl = (repo) => {
    const loc = execFileSync('curl', ['-fsS', '-X', 'POST', '-D', '-', '-o', '/dev/null', `http://127.0.0.1:${port}/v2/${repo}/blobs/uploads/`]).toString().match(/^location:\s*(\S+)/im)[1];
    const u = new URL(loc, `http://127.0.0.1:${port}`); u.searchParams.set('digest', digest);
    // -T streams the file (--data-binary would read it all into memory first).
    execFileSync('curl', ['-fsS', '-X', 'PUT', '-H', 'Content-Type: application/octet-stream', '-T', file, u.href], { stdio: 'ignore' });
  };
  // A fresh client per push: one that saw the blob elsewhere would (rightly) mount it instead of uploading.
  const ours = async (repo, c = new RegistryClient({})) => {
    try { return await c.pushBlob(parseReference(`127.0.0.1:${port}/${repo}:x`), desc, store); } finally { if (c !== client) await c.close(); }
  };
  const time = async (fn) => { const t = process.hrtime.bigint(); await fn(); return Number(process.hrtime.bigint() - t) / 1e6; };
  const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const c = [], o = [], re = [];
  await ours('warmup/a'); // first connection, TLS probe of the loopback host
  for (let i = 0; i < runs; i++) {
    // A fresh repository each time: the blob is not linked there, so it is uploaded in full.
    c.push(await time(() => curl(`curl/r${i}`)));
    o.push(await time(() => ours(`ours/r${i}`)));
    re.push(await time(() => ours(`ours/r${i}`, client)));
  }
  console.log(`push ${mib} MiB blob, ${runs} runs, medians: curl ${med(c).toFixed(0)} ms, buildlite ${med(o).toFixed(0)} ms, ratio ${(med(o) / med(c)).toFixed(2)}x (target <= 1.2)`);
  console.log(`re-push of a present blob (HEAD only): median ${med(re).toFixed(1)} ms (target < 100 ms)`);
  await client.close();
} finally {
  reg.kill();
  rmSync(tmp, { recursive: true, force: true });
}
