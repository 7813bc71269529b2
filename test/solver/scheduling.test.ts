import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildEvent } from '../../core/build.js';
import { mountsUnder } from '../../core/mounter.js';
import type { Builder } from '../../builder/index.js';
import { drive, writeTree } from '../helpers/build-driver.js';
import { startBuilderEnv, type BuilderEnv } from '../helpers/builder-env.js';

const sh = promisify(execFile);

/** Position of the first event matching `pred`, -1 when none. */
function at(events: readonly BuildEvent[], pred: (e: BuildEvent) => boolean): number {
  return events.findIndex(pred);
}

function vertexEvent(name: RegExp, state: string) {
  return (e: BuildEvent) => e.type === 'vertex' && e.state === state && name.test(e.name);
}

describe('solver scheduling: parallel stages, shared vertices, failure cancels the rest', () => {
  let env: BuilderEnv;
  let tmp: string;
  let builder: Builder;
  let base: string;

  beforeAll(async () => {
    env = await startBuilderEnv('solver');
    ({ tmp, builder, base } = env);
  });

  afterAll(async () => {
    await env?.stop();
  });

  it('runs independent stages side by side and a vertex two stages share only once', async () => {
    const ctx = path.join(tmp, 'parallel');
    // Each stage waits for the other to have started: they can only both finish if they run at once.
    await writeTree(ctx, {
      Dockerfile: [
        `FROM ${base} AS common`,
        'RUN echo shared > /shared',
        'FROM common AS a',
        'RUN --mount=type=cache,target=/sync,id=sync-1 touch /sync/a && for i in $(seq 100); do [ -e /sync/b ] && break; sleep 0.1; done; [ -e /sync/b ] && echo a > /a',
        'FROM common AS b',
        'RUN --mount=type=cache,target=/sync,id=sync-1 touch /sync/b && for i in $(seq 100); do [ -e /sync/a ] && break; sleep 0.1; done; [ -e /sync/a ] && echo b > /b',
        `FROM ${base}`,
        'COPY --from=a /a /a',
        'COPY --from=b /b /b',
        'COPY --from=a /shared /shared',
        '',
      ].join('\n'),
    });
    const out = await drive(builder, { dockerfile: await readDockerfile(ctx), context: { dir: ctx } });
    expect(out.error).toBeUndefined();
    const startA = at(out.events, vertexEvent(/\[a .*RUN/, 'started'));
    const startB = at(out.events, vertexEvent(/\[b .*RUN/, 'started'));
    const doneA = at(out.events, vertexEvent(/\[a .*RUN/, 'completed'));
    const doneB = at(out.events, vertexEvent(/\[b .*RUN/, 'completed'));
    expect(startA).toBeGreaterThanOrEqual(0);
    expect(startB).toBeGreaterThanOrEqual(0);
    expect(Math.max(startA, startB)).toBeLessThan(Math.min(doneA, doneB));
    // The shared step ran exactly once although two stages build on it.
    expect(out.ran.filter((n) => n.includes('echo shared'))).toHaveLength(1);
  });

  it('a failing stage cancels a long one and the build unwinds before it reports', async () => {
    const ctx = path.join(tmp, 'cancel');
    await writeTree(ctx, {
      Dockerfile: [
        `FROM ${base} AS slow`,
        'RUN sleep 60 && echo late > /late',
        `FROM ${base} AS broken`,
        'RUN sleep 1 && echo failing-now && exit 7',
        `FROM ${base}`,
        'COPY --from=slow /late /late',
        'COPY --from=broken /etc/passwd /p',
        '',
      ].join('\n'),
    });
    const t0 = process.hrtime.bigint();
    const out = await drive(builder, { dockerfile: await readDockerfile(ctx), context: { dir: ctx } });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    expect(out.error).toMatch(/exit code: 7/);
    // Not a timing assertion on speed: 60 s is the step's own length, reaching it means nothing was cancelled.
    expect(seconds).toBeLessThan(55);
    const slow = out.events.find((e) => e.type === 'vertex' && e.state === 'cancelled' && /sleep 60/.test(e.name));
    expect(slow).toBeDefined();
    expect(out.events.some((e) => e.type === 'vertex' && e.state === 'completed' && /sleep 60/.test(e.name))).toBe(false);
    // Everything was released by the time the error came back.
    expect(await mountsUnder(path.join(tmp, 'root'))).toEqual([]);
    const { stdout } = await sh('runc', ['--root', path.join(tmp, 'root', 'exec', 'runc'), 'list', '-q']).catch(() => ({ stdout: '' }));
    expect(stdout.trim()).toBe('');
  });
});

async function readDockerfile(dir: string): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  return readFile(path.join(dir, 'Dockerfile'), 'utf8');
}
