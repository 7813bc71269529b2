import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { BuildEvent, BuildRequest, BuildResult } from '../../core/build.js';
import { mountsUnder } from '../../core/mounter.js';
import type { Builder, BuildOptions } from '../../builder/index.js';

const sh = promisify(execFile);

export interface BuildOutcome {
  readonly events: BuildEvent[];
  readonly result?: BuildResult;
  readonly error?: string;
  /** Step names that ran (a `started` event), e.g. `[final 3/6] RUN cat /app/main.txt`. */
  readonly ran: string[];
  readonly cached: string[];
  readonly warnings: string[];
}

/** Drives one build to its end and sorts its vertex events into ran and cached. */
export async function drive(builder: Builder, req: BuildRequest, opts: BuildOptions = {}): Promise<BuildOutcome> {
  const events: BuildEvent[] = [];
  for await (const e of builder.build(req, opts)) events.push(e);
  const ran = events.flatMap((e) => (e.type === 'vertex' && e.state === 'started' ? [e.name] : []));
  const cached = events.flatMap((e) => (e.type === 'vertex' && e.state === 'cached' ? [e.name] : []));
  const warnings = events.flatMap((e) => (e.type === 'warning' ? [e.message] : []));
  const last = events[events.length - 1];
  return {
    events,
    ran,
    cached,
    warnings,
    ...(last?.type === 'result' ? { result: last.result } : {}),
    ...(last?.type === 'error' ? { error: last.error.message } : {}),
  };
}

/** Writes files (path → content) under dir, creating parents. */
export async function writeTree(dir: string, files: Record<string, string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(dir, rel);
    await mkdir(path.dirname(p), { recursive: true });
    await writeFile(p, content);
  }
}

/** Lazily unmounts whatever a failed test left under dir (the builders' own sweeps run on open). */
export async function unmountAll(dir: string): Promise<void> {
  for (const m of (await mountsUnder(dir)).reverse()) await sh('umount', ['-l', m]).catch(() => undefined);
}
