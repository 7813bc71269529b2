import { describe, expect, it } from 'vitest';
import { convertDockerfile, DockerfileError } from '../../builder/dockerfile/index.js';
import type { ImageResolver } from '../../builder/graph/index.js';
import { sha256 } from '../../core/digest.js';

/** Every ref resolves, so every failure must come from the Dockerfile itself. */
const anyImage: ImageResolver = {
  async resolve(ref, platform) {
    return { ref: `${ref}@${sha256(ref)}`, config: { Env: ['PATH=/bin'], OnBuild: ref.includes('trig') ? ['RUN x', 'ENV A=$B'] : null }, history: [], platform };
  },
};

/** mulberry32: small, deterministic, good enough to pick tokens. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEEDS = [
  '# syntax=docker/dockerfile:1\nARG BASE=busybox\nFROM $BASE AS build\nWORKDIR /src\nCOPY --chown=app:app . .\nRUN --mount=type=cache,target=/root/.cache make\nFROM scratch\nCOPY --from=build /src/out /\nENTRYPOINT ["/out"]\n',
  'FROM busybox\nRUN <<EOF\necho hi\nEOF\nCOPY <<A <<B /d/\na\nA\nb\nB\nHEALTHCHECK --interval=5s CMD true\nEXPOSE 80/tcp 90-91\nVOLUME ["/v"]\nSHELL ["/bin/sh","-c"]\nONBUILD RUN x\n',
  '# escape=`\nFROM busybox:trig\nENV A=1 B="x y" `\n  C=${A:-z}\nLABEL a=b\nUSER 1:2\nSTOPSIGNAL SIGTERM\nCMD echo $A\nADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 https://e.x/f /f\n',
];

const TOKENS = [
  'FROM', 'RUN', 'COPY', 'ADD', 'ENV', 'ARG', 'LABEL', 'EXPOSE', 'USER', 'WORKDIR', 'VOLUME', 'SHELL', 'STOPSIGNAL',
  'HEALTHCHECK', 'CMD', 'ENTRYPOINT', 'ONBUILD', 'MAINTAINER', 'AS', 'busybox', 'scratch', 'a', 'b', '/x', '.', '$a', '${a:-b}',
  '${', '}', '"', "'", '\\', '`', '[', ']', '[]', '["a"]', '=', '--from=a', '--mount=type=cache,target=/c', '--chmod=7',
  '--interval=1s', '<<EOF', 'EOF', '<<-X', '\n', '\n', '\n', ' ', ' ', '#', '# escape=`', '\t', '0', '-1', '80/udp', 'NONE',
];

function randomDockerfile(r: () => number): string {
  const n = Math.floor(r() * 40);
  let out = '';
  for (let i = 0; i < n; i++) out += `${TOKENS[Math.floor(r() * TOKENS.length)]}${r() < 0.7 ? ' ' : ''}`;
  return out;
}

function mutate(text: string, r: () => number): string {
  const chars = Array.from(text);
  const ops = 1 + Math.floor(r() * 4);
  for (let i = 0; i < ops; i++) {
    const pos = Math.floor(r() * (chars.length + 1));
    const kind = r();
    if (kind < 0.3) chars.splice(pos, 1 + Math.floor(r() * 5));
    else if (kind < 0.6) chars.splice(pos, 0, ...Array.from(TOKENS[Math.floor(r() * TOKENS.length)] as string));
    else if (kind < 0.8) chars.splice(pos, 0, String.fromCharCode(Math.floor(r() * 0x2ff)));
    else chars.length = pos; // truncate
  }
  return chars.join('');
}

async function check(dockerfile: string): Promise<'ok' | 'error'> {
  try {
    await convertDockerfile({ dockerfile, resolver: anyImage, buildArgs: { a: '1' } });
    return 'ok';
  } catch (err) {
    if (!(err instanceof DockerfileError)) {
      throw new Error(`not a DockerfileError for ${JSON.stringify(dockerfile)}: ${String(err)}`, { cause: err });
    }
    return 'error';
  }
}

const ITERATIONS = 1500;

describe('fuzz: random and mutated Dockerfiles', () => {
  it('the seeds convert', async () => {
    for (const s of SEEDS) expect(await check(s)).toBe('ok');
  });

  it(`every failure is a DockerfileError (${ITERATIONS} random, ${ITERATIONS} mutated)`, async () => {
    const r = rng(20240601);
    const seen = { ok: 0, error: 0 };
    const started = Date.now();
    for (let i = 0; i < ITERATIONS; i++) {
      seen[await check(randomDockerfile(r))]++;
      seen[await check(mutate(SEEDS[i % SEEDS.length] as string, r))]++;
    }
    // Both outcomes happen, so the generator exercises success and failure paths.
    expect(seen.ok).toBeGreaterThan(50);
    expect(seen.error).toBeGreaterThan(50);
    // No input makes the frontend crawl.
    expect(Date.now() - started).toBeLessThan(60_000);
  });
});
