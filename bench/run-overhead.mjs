#!/usr/bin/env node
// Issue 18: what a RUN step costs beyond its command, against the floor of
// `runc run true` on this machine. Needs dist/ (npx tsc -p tsconfig.json),
// root, runc and a static /bin/busybox. Usage: node bench/run-overhead.mjs [runs]
//
// Every variant runs `busybox true` on the same rootfs directory, N times,
// round-robin (so load drifts hit each alike); medians in ms:
//   runc-floor        `runc run` of `runc spec`'s default config (no cgroup limits, no seccomp)
//   spec-bare         our spec (the executor's config.json, captured) without seccomp and hooks
//   spec+seccomp      ... with our seccomp profile
//   spec+hook         ... with the loopback hook (sh + nsenter + ip in the new netns), which
//                     the executor wrote until runc's own loopback set-up was found to suffice
//   spec-full         our spec as the executor writes it (seccomp, no hook)
//   spec-full+hook    ... plus that hook: the spec as it was
//   spec-full-keep    ... with `run --keep` then `runc delete` (what the executor does)
//   executor          RuncExecutor.run(): bundle, /etc files, stubs, runc, cgroup reads, delete
//   run-step          a whole RUN step in Builder.build (snapshot, overlay mount, exec,
//                     unmount, diff, layer, commit, image), as the build time of a build
//                     whose one miss is that step minus a fully cached build's
// The differences between neighbours attribute the overhead.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import os from 'node:os';
import path from 'node:path';

const runs = Number(process.argv[2] ?? 15);
const dist = new URL('../dist/', import.meta.url);
const { RuncExecutor, buildSpec, detectCgroups, STEP_LIMIT_DEFAULTS } = await import(new URL('builder/executor/index.js', dist).href);
const { Builder } = await import(new URL('builder/index.js', dist).href);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bl-runbench-'));
const rootfs = path.join(tmp, 'rootfs');
const runcRoot = path.join(tmp, 'runc');
fs.mkdirSync(path.join(rootfs, 'bin'), { recursive: true });
fs.copyFileSync('/bin/busybox', path.join(rootfs, 'bin', 'busybox'));
fs.chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755);
for (const d of ['proc', 'sys', 'dev', 'etc', 'tmp']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
let seq = 0;
// CPU of this process, of every child it has waited for (runc, hooks...), and of the children
// still alive: the host-command helpers (core/host-commands.ts) that start mount, umount,
// getfattr and runc delete for us run for the whole process, and their CPU (with that of the
// commands they waited for) counts as the step's. Wall time on a shared machine drifts with the
// load, CPU time much less, so both are reported.
const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
const statTicks = (stat, withChildren) => {
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime, stime (fields 14, 15), cutime, cstime (16, 17); f[0] is field 3
  return Number(f[11]) + Number(f[12]) + (withChildren ? Number(f[13]) + Number(f[14]) : 0);
};
function liveChildren() {
  const pids = [];
  for (const tid of fs.readdirSync('/proc/self/task')) {
    const text = fs.readFileSync(`/proc/self/task/${tid}/children`, 'utf8').trim();
    if (text) pids.push(...text.split(' '));
  }
  return pids;
}
function cpuMs() {
  const { user, system } = process.cpuUsage();
  const self = fs.readFileSync('/proc/self/stat', 'utf8');
  const f = self.slice(self.lastIndexOf(')') + 2).split(' ');
  let ticks = Number(f[13]) + Number(f[14]);
  for (const pid of liveChildren()) {
    try {
      ticks += statTicks(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'), true);
    } catch {
      // exited between the two reads: its CPU moves to our cutime
    }
  }
  return (user + system) / 1000 + ticks * TICK_MS;
}

// The executor's own config.json, captured as it writes it (fs.writeFileSync seen through the ESM binding).
const stateDir = path.join(tmp, 'exec');
const executor = new RuncExecutor({ stateDir });
let captured;
const realWrite = fs.writeFileSync;
fs.writeFileSync = function (file, data, ...rest) {
  if (typeof file === 'string' && file.endsWith('/config.json')) captured = JSON.parse(String(data));
  return realWrite.call(this, file, data, ...rest);
};
syncBuiltinESMExports();
const proc = { args: ['/bin/busybox', 'true'], env: ['PATH=/bin'], cwd: '/', user: '0:0' };
const rootMount = [{ type: 'bind', source: rootfs, options: ['rbind', 'rw'] }];
await executor.run(proc, { rootfs: rootMount, network: 'none' });
fs.writeFileSync = realWrite;
syncBuiltinESMExports();
if (!captured) throw new Error('did not capture the executor config.json');

function bundleWith(name, mutate) {
  const dir = path.join(tmp, 'bundles', name);
  fs.mkdirSync(dir, { recursive: true });
  for (const f of ['hosts', 'resolv.conf', 'hostname']) fs.writeFileSync(path.join(dir, f), f === 'hostname' ? 'bench\n' : '');
  const spec = structuredClone(captured);
  spec.root = { path: rootfs, readonly: false };
  for (const m of spec.mounts) {
    const base = path.basename(m.source ?? '');
    if (['hosts', 'resolv.conf', 'hostname'].includes(base)) m.source = path.join(dir, base);
  }
  mutate(spec);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec));
  return dir;
}
function runcRun(bundle, keep) {
  const id = `bench-${process.pid}-${++seq}`;
  const t0 = process.hrtime.bigint();
  const args = ['--root', runcRoot, 'run', ...(keep ? ['--keep'] : []), '--bundle', bundle, id];
  const r = spawnSync('runc', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  if (keep) spawnSync('runc', ['--root', runcRoot, 'delete', '--force', id], { stdio: 'ignore' });
  const t = ms(t0);
  if (r.status !== 0) throw new Error(`runc ${args.join(' ')}: ${r.status} ${r.stderr}`);
  return t;
}
const withCgroup = (spec) => { spec.linux.cgroupsPath = `/bl-runbench-${process.pid}-${++seq}`; };

// The floor: runc's own default spec (runc spec), root read-write on the same rootfs.
const floorDir = path.join(tmp, 'bundles', 'floor');
fs.mkdirSync(floorDir, { recursive: true });
execFileSync('runc', ['spec', '--bundle', floorDir]);
const floorSpec = JSON.parse(fs.readFileSync(path.join(floorDir, 'config.json'), 'utf8'));
floorSpec.root = { path: rootfs, readonly: false };
floorSpec.process.terminal = false;
floorSpec.process.args = ['/bin/busybox', 'true'];
fs.writeFileSync(path.join(floorDir, 'config.json'), JSON.stringify(floorSpec));

const bare = (s) => { delete s.linux.seccomp; delete s.hooks; };
// The loopback hook runc made needless (sh + nsenter + ip in the new netns), as spec.ts writes it when asked.
const loopbackHooks = buildSpec({
  args: ['true'], env: [], cwd: '/', user: { uid: 0, gid: 0, additionalGids: [] }, hostname: 'bench', network: 'none',
  limits: STEP_LIMIT_DEFAULTS, cgroups: detectCgroups(), etcFiles: { hosts: '/dev/null', resolvConf: '/dev/null', hostname: '/dev/null' },
  mounts: [], cgroupsPath: '/bench', loopback: { sh: '/bin/sh', nsenter: '/usr/bin/nsenter', ip: ['/usr/sbin/ip'] },
}).hooks;
const bundles = {
  'spec-bare': bundleWith('bare', bare),
  'spec+seccomp': bundleWith('seccomp', (s) => { delete s.hooks; }),
  'spec+hook': bundleWith('hook', (s) => { delete s.linux.seccomp; s.hooks = loopbackHooks; }),
  'spec-full': bundleWith('full', () => undefined),
  'spec-full+hook': bundleWith('full-hook', (s) => { s.hooks = loopbackHooks; }),
};
// Each run gets a cgroup path of its own, as the executor's do.
const specRun = (dir, keep) => () => {
  const f = path.join(dir, 'config.json');
  const s = JSON.parse(fs.readFileSync(f, 'utf8'));
  withCgroup(s);
  fs.writeFileSync(f, JSON.stringify(s));
  return runcRun(dir, keep);
};

// A whole RUN step through the builder: one miss (a new ARG value) against a fully cached build.
const ctx = path.join(tmp, 'ctx');
fs.mkdirSync(ctx);
fs.copyFileSync('/bin/busybox', path.join(ctx, 'busybox'));
const dockerfile = 'FROM scratch\nCOPY busybox /bin/busybox\nARG N\nRUN ["/bin/busybox", "true"]\n';
const builder = await Builder.open({ root: path.join(tmp, 'state') });
async function build(n) {
  const t0 = process.hrtime.bigint();
  let last;
  for await (const e of builder.build({ dockerfile, context: { dir: ctx }, buildArgs: { N: String(n) } })) last = e;
  if (last?.type !== 'result') throw new Error(`build failed: ${JSON.stringify(last)}`);
  return ms(t0);
}
await build(0);

const variants = {
  'runc-floor': () => runcRun(floorDir, false),
  'spec-bare': specRun(bundles['spec-bare'], false),
  'spec+seccomp': specRun(bundles['spec+seccomp'], false),
  'spec+hook': specRun(bundles['spec+hook'], false),
  'spec-full': specRun(bundles['spec-full'], false),
  'spec-full+hook': specRun(bundles['spec-full+hook'], false),
  'spec-full-keep': specRun(bundles['spec-full'], true),
  executor: async () => { const t0 = process.hrtime.bigint(); const r = await executor.run(proc, { rootfs: rootMount, network: 'none' }); if (r.exitCode !== 0) throw new Error('exit'); return ms(t0); },
  'build-miss': () => build(++seq),
  'build-cached': () => build(0),
};
const times = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
const cpu = Object.fromEntries(Object.keys(variants).map((k) => [k, 0]));
try {
  for (let i = 0; i < runs; i++) {
    for (const [k, f] of Object.entries(variants)) {
      const c0 = cpuMs();
      times[k].push(await f());
      await executor.drain(); // its background delete counts for the variant that started it
      cpu[k] += cpuMs() - c0;
    }
  }
} finally {
  await builder.close();
  await executor.close?.();
}
const med = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
med['run-step'] = med['build-miss'] - med['build-cached'];
const cpuPer = Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, v / runs]));
cpuPer['run-step'] = cpuPer['build-miss'] - cpuPer['build-cached'];
const floor = med['runc-floor'];
const rows = [
  ['runc-floor', 'runc spec default config'],
  ['spec-bare', 'our spec, no seccomp, no hook'],
  ['spec+seccomp', 'our spec + seccomp'],
  ['spec+hook', 'our spec + loopback hook (before this round)'],
  ['spec-full', 'our spec as written (seccomp, no hook)'],
  ['spec-full+hook', 'our spec as written before (seccomp + hook)'],
  ['spec-full-keep', '+ run --keep, runc delete'],
  ['executor', 'RuncExecutor.run()'],
  ['run-step', 'whole RUN step in a build (miss - cached)'],
  ['build-cached', 'a fully cached build (in-process)'],
];
console.log(`RUN overhead, ${runs} runs each, round-robin; ${new Date().toISOString()}; load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log('| variant | what | wall ms (median) | x floor | CPU ms (mean, with children) | x floor |');
console.log('| --- | --- | --- | --- | --- | --- |');
const cfloor = cpuPer['runc-floor'];
for (const [k, what] of rows) console.log(`| ${k} | ${what} | ${med[k].toFixed(1)} | ${(med[k] / floor).toFixed(2)} | ${cpuPer[k].toFixed(1)} | ${(cpuPer[k] / cfloor).toFixed(2)} |`);
spawnSync('umount', ['-R', '-l', path.join(tmp, 'state')], { stdio: 'ignore' });
fs.rmSync(tmp, { recursive: true, force: true });
