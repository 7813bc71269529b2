#!/usr/bin/env node
// Multi-platform builds (issue 16): what QEMU user emulation costs a RUN, and
// what one two-platform build costs against two single-platform builds.
//
//   npm run build && node bench/multi-platform.mjs [runs]     (as root; after
//   scripts/provision.sh --test, which registers QEMU and downloads the arm64
//   busybox into test/.fixtures)
//
// No registry: the images are FROM scratch with Debian's busybox-static of
// each architecture copied in from the context. Every build is cold (a fresh
// --root). A RUN's time is taken from the build's own events (started ->
// completed), so it excludes start-up, hashing and export. Cells alternate
// native and emulated within a run; medians of `runs` (default 3) are printed
// as a Markdown table and written to bench/results/multi-platform.md.
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(repo, 'dist/bundle/main.js');
const runs = Number(process.argv[2] ?? 3);
const arm64Busybox = process.env.BUILDLITE_BUSYBOX_ARM64 ?? path.join(repo, 'test/.fixtures/busybox-arm64');
const amd64Busybox = process.env.BUILDLITE_BUSYBOX ?? '/bin/busybox';

// CPU: a shell loop (every instruction translated by QEMU). Exec: 300 process starts (each one a new QEMU).
const WORK = {
  cpu: 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo $i',
  exec: 'for i in $(seq 300); do /bin/busybox true; done; echo done',
};

function run(args) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b) => (out += b));
    child.stderr.on('data', (b) => (err += b));
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code !== 0) reject(new Error(`buildlite ${args.join(' ')} exited ${code}: ${err.slice(-2000)}`));
      else resolve({ seconds, events: out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)) });
    });
  });
}

/** Seconds each RUN vertex took, by name, from its started and completed events. */
function stepSeconds(events) {
  const start = new Map();
  const out = new Map();
  for (const e of events) {
    if (e.type !== 'vertex') continue;
    if (e.state === 'started') start.set(e.vertex, e.at);
    if (e.state === 'completed' && start.has(e.vertex)) out.set(e.name, (e.at - start.get(e.vertex)) / 1000);
  }
  return out;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main() {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-bench-platform-'));
  try {
    const ctx = path.join(tmp, 'ctx');
    await mkdir(ctx);
    await copyFile(amd64Busybox, path.join(ctx, 'busybox-amd64'));
    await copyFile(arm64Busybox, path.join(ctx, 'busybox-arm64'));
    const df = (name, body) => writeFile(path.join(ctx, name), body);
    for (const [k, w] of Object.entries(WORK)) {
      await df(`${k}.Dockerfile`, `FROM scratch\nARG TARGETARCH\nCOPY busybox-$TARGETARCH /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nRUN ${w}\n`);
    }
    // The cross-compilation shape: a build stage on the build platform (shared), a thin RUN per target.
    await df(
      'cross.Dockerfile',
      [
        'FROM --platform=$BUILDPLATFORM scratch AS build',
        'COPY busybox-amd64 /bin/busybox',
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]',
        `RUN ${WORK.cpu} > /out`,
        'FROM scratch',
        'ARG TARGETARCH',
        'COPY busybox-$TARGETARCH /bin/busybox',
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]',
        'COPY --from=build /out /out',
        'RUN cat /out > /seen',
        '',
      ].join('\n'),
    );

    let n = 0;
    const build = async (file, platform) => {
      const root = path.join(tmp, `root-${n++}`);
      try {
        return await run(['build', '--root', root, '--progress', 'json', '--platform', platform, '-f', path.join(ctx, file), ctx]);
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    };

    const rows = [];
    for (const k of Object.keys(WORK)) {
      const native = [];
      const emulated = [];
      for (let i = 0; i < runs; i++) {
        for (const [platform, into] of i % 2 ? [['linux/arm64', emulated], ['linux/amd64', native]] : [['linux/amd64', native], ['linux/arm64', emulated]]) {
          const r = await build(`${k}.Dockerfile`, platform);
          const secs = [...stepSeconds(r.events)].find(([name]) => name.includes(WORK[k].slice(0, 20)))?.[1];
          into.push(secs);
        }
      }
      rows.push([`RUN ${k} (${k === 'cpu' ? '300k-iteration shell loop' : '300 process starts'})`, median(native), median(emulated), median(emulated) / median(native)]);
    }

    const both = [];
    const separate = [];
    for (let i = 0; i < runs; i++) {
      const two = async () => both.push((await build('cross.Dockerfile', 'linux/amd64,linux/arm64')).seconds);
      const one = async () => separate.push((await build('cross.Dockerfile', 'linux/amd64')).seconds + (await build('cross.Dockerfile', 'linux/arm64')).seconds);
      if (i % 2) await one().then(two);
      else await two().then(one);
    }

    const f = (x) => x.toFixed(2);
    const lines = [
      `# Multi-platform builds (${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(2)}, ${runs} runs, medians)`,
      '',
      '| RUN step (cold) | native amd64 s | emulated arm64 s | emulated / native |',
      '| --- | --- | --- | --- |',
      ...rows.map(([name, a, b, r]) => `| ${name} | ${f(a)} | ${f(b)} | ${r.toFixed(1)}x |`),
      '',
      '| cross-compilation Dockerfile, cold, whole command | seconds |',
      '| --- | --- |',
      `| one build, --platform linux/amd64,linux/arm64 | ${f(median(both))} |`,
      `| two builds, linux/amd64 then linux/arm64 | ${f(median(separate))} |`,
      `| ratio one / two | ${(median(both) / median(separate)).toFixed(2)} |`,
      '',
    ];
    const text = lines.join('\n');
    process.stdout.write(`${text}\n`);
    await mkdir(path.join(repo, 'bench/results'), { recursive: true });
    await writeFile(path.join(repo, 'bench/results/multi-platform.md'), text);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
