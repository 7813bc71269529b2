import { readFile, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildEvent } from '../../core/build.js';
import { CLI } from '../helpers/cli.js';
import { sh, startCliFixture, type CliFixture } from './fixture.js';

// A private tmux server: no clash with anyone's sessions. The pane's command sleeps after the build so the screen stays to be captured.
const TMUX_SOCKET = `bl-test-${process.pid}`;
const tmux = (...args: string[]) => sh('tmux', ['-L', TMUX_SOCKET, ...args]);

/** The progress modes and the failure report, as a user sees them. */
describe('buildlite build progress and failures', () => {
  let f: CliFixture;
  let ctx: string;

  beforeAll(async () => {
    f = await startCliFixture('progress');
    ctx = await f.context('prog', {
      'a.txt': 'a\n',
      Dockerfile: [
        `FROM ${f.base} AS one`,
        'RUN echo stage-one-output && sleep 1',
        `FROM ${f.base} AS two`,
        'RUN echo stage-two-output && sleep 1',
        `FROM ${f.base}`,
        'COPY --from=one /etc/passwd /one',
        'COPY --from=two /etc/passwd /two',
        'COPY a.txt /a.txt',
        // Control characters from the step must reach the terminal escaped.
        `RUN printf 'evil\\033[2Jescape\\n'`,
        '',
      ].join('\n'),
    });
  });
  afterAll(async () => {
    await f?.close();
    // The server left with its last session; its socket file stays behind unless removed.
    const uid = process.getuid?.() ?? 0;
    await rm(path.join(process.env['TMUX_TMPDIR'] ?? '/tmp', `tmux-${uid}`, TMUX_SOCKET), { force: true });
  });

  it('plain: ordered #N lines, step output prefixed, a summary at the end', async () => {
    const r = await f.build(['--progress', 'plain', '--no-cache', ctx]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n');
    const one = lines.find((l) => l.endsWith(' stage-one-output'));
    expect(one).toMatch(/^#\d+ stage-one-output$/);
    // The step's output carries the number of the step that printed it.
    const n = one!.split(' ')[0]!;
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${n} \\[one 2/2\\] RUN echo stage-one-output`)));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${n} DONE \\d+\\.\\ds$`)));
    expect(r.stderr).toContain('evil\\x1b[2Jescape');
    expect(r.stderr).not.toContain('\x1b');
    expect(lines.filter(Boolean).at(-1)).toMatch(/^#done image sha256:[0-9a-f]{64} \(.*cached, \d+ run\)$/);
  });

  it('json: one BuildEvent per line, in order, ending with the result', async () => {
    const r = await f.build(['--progress', 'json', ctx]);
    expect(r.code, r.stderr).toBe(0);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as BuildEvent);
    expect(events.length).toBeGreaterThan(5);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.at(-1)!.type).toBe('result');
    expect(events.filter((e) => e.type === 'vertex' && e.state === 'cached').length).toBeGreaterThan(0);
  });

  it('tty under tmux: the final screen shows every step and its state', async () => {
    // Warm the cache first, so the screen has both CACHED and DONE steps whatever ran before.
    expect((await f.build(['--progress', 'plain', ctx])).code).toBe(0);
    const session = `bl-tty-${process.pid}`;
    const done = path.join(f.tmp, 'tty-done');
    const cmd = `${process.execPath} ${CLI} build --root ${f.root} --progress tty --no-cache-filter two ${ctx}; echo "exit=$?" > ${done}; sleep 600`;
    await tmux('new-session', '-d', '-s', session, '-x', '200', '-y', '50', cmd);
    try {
      const deadline = Date.now() + 90_000;
      while (!(await stat(done).catch(() => undefined)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      expect((await readFile(done, 'utf8')).trim()).toBe('exit=0');
      const { stdout: screen } = await tmux('capture-pane', '-p', '-t', session);
      expect(screen).toMatch(/\[\+\] Building \d+\.\ds \((\d+)\/\1\) FINISHED/);
      const steps = screen.split('\n').filter((l) => l.startsWith(' => '));
      // Every step once, with its state: the stage "two" ran again, the rest came from the cache.
      expect(steps.find((l) => l.includes('[two 2/2] RUN echo stage-two-output'))).toMatch(/DONE\s+\d+\.\ds\s*$/);
      expect(steps.find((l) => l.includes('[one 2/2] RUN echo stage-one-output'))).toMatch(/CACHED/);
      expect(steps.find((l) => l.includes('COPY a.txt /a.txt'))).toMatch(/(CACHED|DONE)/);
      for (const l of steps) expect(l).toMatch(/(DONE|CACHED)(\s+\d+\.\ds)?\s*$/);
      expect(steps.some((l) => l.includes('RUNNING'))).toBe(false);
      expect(screen).toMatch(/image sha256:[0-9a-f]{64}/);
    } finally {
      await tmux('kill-session', '-t', session).catch(() => undefined);
    }
  });

  it('tty under tmux: a failure shows the step as ERROR, its output, the reason and the marked line', async () => {
    const bad = await f.context('tty-fail', { Dockerfile: `FROM ${f.base}\nRUN echo ok\nRUN echo before-failing && exit 7\n` });
    const session = `bl-ttyf-${process.pid}`;
    const done = path.join(f.tmp, 'ttyf-done');
    await tmux('new-session', '-d', '-s', session, '-x', '200', '-y', '50', `${process.execPath} ${CLI} build --root ${f.root} --progress tty ${bad}; echo "exit=$?" > ${done}; sleep 600`);
    try {
      const deadline = Date.now() + 90_000;
      while (!(await stat(done).catch(() => undefined)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      expect((await readFile(done, 'utf8')).trim()).toBe('exit=1');
      const { stdout: screen } = await tmux('capture-pane', '-p', '-t', session);
      expect(screen).toMatch(/FAILED/);
      expect(screen).toMatch(/ => \[stage-0 2\/3\] RUN echo ok\s+DONE/);
      expect(screen).toMatch(/ => \[stage-0 3\/3\] RUN echo before-failing && exit 7\s+ERROR/);
      expect(screen).toContain('before-failing');
      expect(screen).toContain('reason: exit code 7');
      expect(screen).toMatch(/>>> RUN echo before-failing && exit 7/);
    } finally {
      await tmux('kill-session', '-t', session).catch(() => undefined);
    }
  });

  it('a failed build (plain, quiet): the step output, the reason, the Dockerfile line; exit 1', async () => {
    const bad = await f.context('fail', {
      Dockerfile: `FROM ${f.base}\nENV X=1\nRUN echo line-one && echo line-two >&2 && exit 3\nRUN echo never-runs\n`,
    });
    for (const mode of [['--progress', 'plain'], ['--quiet']]) {
      const r = await f.build([...mode, bad]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      const e = r.stderr;
      expect(e).toContain('line-one');
      expect(e).toContain('line-two');
      expect(e).toContain('reason: exit code 3');
      expect(e).toMatch(/ERROR: process .* did not complete successfully: exit code: 3/);
      expect(e).toContain('Dockerfile:3');
      expect(e).toMatch(/ 3 \| >>> RUN echo line-one && echo line-two >&2 && exit 3/);
      expect(e).toMatch(/ 2 \|     ENV X=1/);
      expect(e).not.toMatch(/^#\d+ never-runs$/m);
    }
    const killed = await f.context('killed', { Dockerfile: `FROM ${f.base}\nRUN sh -c 'kill -9 $$' && echo unreachable\n` });
    const k = await f.build(['--progress', 'plain', killed]);
    expect(k.code).toBe(1);
    expect(k.stderr).toMatch(/reason: (killed by signal SIGKILL|exit code 137)/);
  });

  it('logs are never silently clipped: past the cap the output says where the full log is', async () => {
    // 5 MiB of output, over the 4 MiB the event stream carries.
    const big = await f.context('biglog', { Dockerfile: `FROM ${f.base}\nRUN seq 0 89999 | sed 's/^/line /; s/$/ ${'0'.repeat(50)}/' && echo the-end-of-it | tr a-z A-Z\n` });
    const r = await f.build(['--progress', 'plain', big]);
    expect(r.code).toBe(0);
    const m = /\[output clipped: this step printed more than 4 MiB to the build log; the full log is in (\S+)\]/.exec(r.stderr);
    expect(m).not.toBeNull();
    const logFile = m![1]!;
    expect(logFile.startsWith(path.join(f.root, 'logs') + path.sep)).toBe(true);
    const full = await readFile(logFile, 'utf8');
    expect(full).toContain('line 89999 ');
    expect(full.trimEnd().endsWith('THE-END-OF-IT')).toBe(true);
    expect(r.stderr).not.toContain('THE-END-OF-IT');
    // One directory per build, one file per step.
    expect((await readdir(path.dirname(logFile))).every((n) => n.endsWith('.log'))).toBe(true);
  });
});
