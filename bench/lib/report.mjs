// Merges one bench run (harness JSON lines, the buildlite adapter's peak-RSS
// log, the extras) into one JSON-lines file and a markdown summary with the
// medians, the buildlite/buildah ratios and each target met or missed.
// Usage: node report.mjs --harness F --rss F --extras F --jsonl OUT --md OUT --command "..."
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const lines = (f) => (f && existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean) : []);
const harness = lines(args.harness).map((l) => JSON.parse(l));
const extras = lines(args.extras).map((l) => JSON.parse(l));
const rss = lines(args.rss).map((l) => {
  const [verb, ref, tree, big] = l.split(' ');
  return { verb, ref, tree_kib: Number(tree), largest_kib: Number(big) };
});

// The adapter logs one RSS line per build call, in call order (a push is one
// process: GNU time's figure is its tree); the harness times exactly those
// calls in the same order. Push lines of older logs are skipped.
const PUSH_PHASES = new Set(['push', 'push_warm']);
const builds = harness.filter((m) => m.kind === 'measure' && m.builder === 'buildlite' && !PUSH_PHASES.has(m.phase));
const buildRss = rss.filter((r) => r.verb === 'build');
builds.forEach((m, i) => {
  if (buildRss[i]) m.tree_rss_kib = buildRss[i].tree_kib;
});
const all = [...harness.filter((m) => m.kind !== 'summary' && m.kind !== 'ratio'), ...extras.map((e) => ({ ...e, source: 'extras' }))];
writeFileSync(args.jsonl, all.map((o) => JSON.stringify(o)).join('\n') + '\n');

const med = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return undefined;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const ok = all.filter((m) => m.kind === 'measure' && m.exit_code === 0);
const phases = ['cold', 'warm', 'incr', 'push', 'push_warm'];
const workloads = [...new Set(ok.filter((m) => !m.source).map((m) => m.workload))].sort();
const cell = (b, w, p) => ok.filter((m) => m.builder === b && m.workload === w && m.phase === p);
const ratio = (w, p) => {
  const rs = cell('buildlite', w, p)
    .map((m) => {
      const peer = cell('buildah', w, p).find((x) => x.run === m.run);
      return peer ? m.wall_s / peer.wall_s : undefined;
    })
    .filter((x) => x !== undefined);
  return med(rs);
};
const f2 = (x) => (x === undefined ? '-' : x.toFixed(2));
const failed = (b, w, p) => all.some((m) => m.kind === 'measure' && m.builder === b && m.workload === w && m.phase === p && m.exit_code !== 0);
const secs = (b, w, p) => {
  const c = cell(b, w, p);
  if (!c.length) return failed(b, w, p) ? 'FAILED' : '-';
  return `${f2(med(c.map((m) => m.wall_s)))}${failed(b, w, p) ? ' +fail' : ''}`;
};
// Issue 18's targets (round 2); manyfiles' warm keeps issue 9's tighter 0.25.
const target = (w, p) => ({ cold: 0.6, warm: w === 'manyfiles' ? 0.25 : 0.3, incr: 0.4, push: 0.8, push_warm: 1.0 })[p];

const meta = harness.find((m) => m.kind === 'meta' && m.builder === 'buildlite') ?? harness.find((m) => m.kind === 'meta');
const peerMeta = harness.find((m) => m.kind === 'meta' && m.builder === 'buildah');
const out = [];
out.push('# buildlite vs buildah: latest run', '');
out.push(`Reproduce (as root, Debian 12, from the repository root): \`${args.command}\``, '');
if (meta) {
  const h = meta.host;
  out.push(`Machine: ${h.cpu}, ${h.cores} cores, ${Math.round(h.mem_mib / 1024)} GiB RAM, Linux ${h.kernel}, node ${process.version}; load at start ${h.loadavg_start}. Started ${meta.started}, ${meta.runs} runs per cell, builders alternating.`);
  out.push(`Peer: ${peerMeta?.builder_version ?? 'buildah'} (${peerMeta?.settings ?? ''}). buildlite: ${meta.builder_version} (${meta.settings}).`, '');
}
// Node 20 parses this bundle at every start, before any of our code runs (issue 18 measured
// `node -e 0` at ~5x the instructions with a 220 KB bundle); buildah does not read it.
if (process.env.NODE_EXTRA_CA_CERTS) {
  out.push('Note: NODE_EXTRA_CA_CERTS was set for this run; Node parses that CA bundle at every start of every buildlite command (see bench/results/2026-12-05-issue18.md), which buildah does not.', '');
}
out.push('Wall seconds, median over runs; ratio = median over runs of buildlite/buildah in the same run (lower is better; target in brackets, ✓ met, ✗ missed).', '');
out.push(`| workload | builder | ${phases.join(' | ')} |`, `| --- | --- | ${phases.map(() => '---').join(' | ')} |`);
const verdicts = [];
for (const w of workloads) {
  out.push(`| ${w} | buildah | ${phases.map((p) => secs('buildah', w, p)).join(' | ')} |`);
  out.push(`| | buildlite | ${phases.map((p) => secs('buildlite', w, p)).join(' | ')} |`);
  out.push(
    `| | **ratio** | ${phases
      .map((p) => {
        const r = ratio(w, p);
        if (r === undefined) return '-';
        const t = target(w, p);
        verdicts.push({ w, p, r, t, met: r <= t });
        return `${f2(r)}x [≤${t}] ${r <= t ? '✓' : '✗'}`;
      })
      .join(' | ')} |`,
  );
}
out.push('');
const rssRows = workloads.map((w) => {
  const c = ok.filter((m) => m.builder === 'buildlite' && m.workload === w && m.phase === 'cold');
  const tree = Math.max(...c.map((m) => m.tree_rss_kib ?? 0));
  const largest = Math.max(...c.map((m) => m.max_rss_kib ?? 0));
  const peer = Math.max(...ok.filter((m) => m.builder === 'buildah' && m.workload === w && m.phase === 'cold').map((m) => m.max_rss_kib ?? 0));
  return `| ${w} | ${(tree / 1024).toFixed(0)} | ${(largest / 1024).toFixed(0)} | ${(peer / 1024).toFixed(0)} |`;
});
out.push('Peak memory of the cold build, MiB (max over runs): buildlite process tree (polled every 0.1 s), its largest process (GNU time), buildah\'s largest process (GNU time).', '');
out.push('| workload | buildlite tree | buildlite largest | buildah largest |', '| --- | --- | --- | --- |', ...rssRows, '');
const big = ok.filter((m) => m.builder === 'buildlite' && m.workload === 'bigfile' && (m.phase === 'cold' || m.phase === 'warm' || m.phase === 'incr'));
if (big.length) {
  const peak = Math.max(...big.map((m) => m.tree_rss_kib ?? m.max_rss_kib ?? 0)) / 1024;
  out.push(`200 MiB workload, peak RSS of the buildlite tree over all its builds: ${peak.toFixed(0)} MiB (target < 200 MiB) ${peak < 200 ? '✓' : '✗'}.`, '');
}
if (extras.length) {
  out.push('Extra scenarios (workload `' + (extras[0]?.workload ?? '') + '`): wall seconds, median; cached = step lines reported as cache hits.', '');
  out.push('| scenario | buildah | buildlite | ratio | buildlite cached steps |', '| --- | --- | --- | --- | --- |');
  for (const p of [...new Set(extras.map((e) => e.phase))]) {
    const c = (b) => extras.filter((e) => e.builder === b && e.phase === p && e.exit_code === 0);
    const bad = (b) => extras.filter((e) => e.builder === b && e.phase === p && e.exit_code !== 0);
    const show = (b) => (c(b).length ? f2(med(c(b).map((e) => e.wall_s))) : bad(b).some((e) => e.exit_code === 99) ? 'pending (export failed)' : 'FAILED');
    const rs = c('buildlite').map((m) => c('buildah').find((x) => x.run === m.run)).map((x, i) => (x ? c('buildlite')[i].wall_s / x.wall_s : undefined)).filter((x) => x !== undefined);
    out.push(`| ${p} | ${show('buildah')} | ${show('buildlite')} | ${rs.length ? f2(med(rs)) + 'x' : '-'} | ${c('buildlite').length ? med(c('buildlite').map((e) => e.cache_hit_lines)) : '-'} |`);
  }
  out.push('');
}
const met = verdicts.filter((v) => v.met).length;
out.push(`Targets met: ${met} of ${verdicts.length} cells.`, '');
out.push(`Raw data: \`bench/results/${args.jsonl.split('/').pop()}\` (JSON lines, not committed); build logs under $BENCH_LOG_DIR.`);
writeFileSync(args.md, out.join('\n') + '\n');
process.stdout.write(out.join('\n') + '\n');
