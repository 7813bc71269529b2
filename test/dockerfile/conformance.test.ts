import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { convertDockerfile, DockerfileError } from '../../builder/dockerfile/index.js';
import { DEFAULT_PATH, type ContainerConfig } from '../../core/oci.js';
import { CONFORMANCE_DIR, conformanceCases } from '../helpers/conformance.js';
import { FakeResolver } from './fake-resolver.js';

const casesDir = path.join(CONFORMANCE_DIR, 'cases');
const cases = conformanceCases();
const present = cases.length > 0;
if (!present) console.warn(`conformance cases not found at ${casesDir}: skipping (CI keeps them beside the repo)`);

interface CaseArgs {
  buildArgs: Record<string, string>;
  target?: string;
}

function readArgs(dir: string): CaseArgs {
  const out: CaseArgs = { buildArgs: {} };
  const f = path.join(dir, 'args');
  if (!existsSync(f)) return out;
  for (const line of readFileSync(f, 'utf8').split('\n')) {
    const m = /^(--build-arg|--target) (.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === '--target') out.target = m[2] as string;
    else {
      const kv = m[2] as string;
      const i = kv.indexOf('=');
      out.buildArgs[kv.slice(0, i)] = kv.slice(i + 1);
    }
  }
  return out;
}

/** The harness's normalisation of a config (lib/normalize.py): empty → null, sets sorted, default PATH dropped. */
function normalize(c: ContainerConfig): Record<string, unknown> {
  const list = (v: string[] | null | undefined): string[] | null => (v && v.length > 0 ? v : null);
  const keys = (v: Record<string, unknown> | undefined): string[] | null => (v && Object.keys(v).length > 0 ? Object.keys(v).sort() : null);
  const env = (c.Env ?? []).filter((e) => e !== `PATH=${DEFAULT_PATH}`);
  const hc = c.Healthcheck
    ? Object.fromEntries(Object.entries(c.Healthcheck).filter(([, v]) => v !== 0 && v !== undefined))
    : null;
  return {
    Env: env.length > 0 ? env : null,
    Cmd: list(c.Cmd),
    Entrypoint: list(c.Entrypoint),
    Shell: list(c.Shell),
    OnBuild: list(c.OnBuild),
    WorkingDir: c.WorkingDir || null,
    User: c.User || null,
    StopSignal: c.StopSignal || null,
    ExposedPorts: keys(c.ExposedPorts),
    Volumes: keys(c.Volumes),
    Labels: c.Labels && Object.keys(c.Labels).length > 0 ? c.Labels : null,
    Healthcheck: hc,
  };
}

describe.skipIf(!present)('conformance Dockerfiles', () => {
  it('found the cases', () => {
    expect(cases.length).toBeGreaterThan(10);
  });

  it.each(cases)('%s', async (name) => {
    const dir = path.join(casesDir, name);
    const dockerfile = readFileSync(path.join(dir, 'Dockerfile'), 'utf8');
    const expectJson = JSON.parse(readFileSync(path.join(dir, 'expect.json'), 'utf8')) as {
      fails?: boolean;
      error_mentions?: string[];
      config?: Record<string, unknown>;
    };
    const ignoreFile = path.join(dir, 'context', '.dockerignore');
    const args = readArgs(dir);
    const run = () =>
      convertDockerfile({
        dockerfile,
        resolver: new FakeResolver(),
        buildArgs: args.buildArgs,
        ...(args.target ? { target: args.target } : {}),
        ...(existsSync(ignoreFile) ? { dockerignore: readFileSync(ignoreFile, 'utf8') } : {}),
      });
    if (expectJson.fails) {
      // Failures that only a build can find (a RUN exit code, a missing context file) convert fine.
      const result = await run().then(
        () => undefined,
        (e: unknown) => e,
      );
      if (result === undefined) {
        expect(['fail-run-exit-code', 'fail-copy-missing-source']).toContain(name);
        return;
      }
      expect(result).toBeInstanceOf(DockerfileError);
      const err = result as DockerfileError;
      for (const m of expectJson.error_mentions ?? []) expect(err.message).toContain(m);
      const lines = dockerfile.split('\n');
      const line = lines[(err.range?.startLine ?? 0) - 1] ?? '';
      // The error names the line that holds the mistake.
      expect(err.range).toBeDefined();
      expect(line.length).toBeGreaterThan(0);
      if (name !== 'fail-no-from') for (const m of expectJson.error_mentions ?? []) expect(line).toContain(m);
      return;
    }
    const def = await run();
    expect(def.root).not.toBeNull();
    if (expectJson.config) expect(normalize(def.config)).toEqual(expectJson.config);
  });
});
