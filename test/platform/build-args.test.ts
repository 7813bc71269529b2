/**
 * The platform build args, in a real build (conformance-style: what BuildKit
 * gives each): TARGET* are the build's target in every stage, BUILD* the
 * machine's, both normalised (arm64 has no variant, arm is arm/v7). The
 * args are printed by a RUN in a `--platform=$BUILDPLATFORM` stage, which
 * runs natively whatever the target.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { platformString } from '../../core/oci.js';
import { hostPlatform } from '../../core/platform.js';
import { startCliFixture, type CliFixture } from '../cli/fixture.js';

const ARGS = ['TARGETPLATFORM', 'TARGETOS', 'TARGETARCH', 'TARGETVARIANT', 'BUILDPLATFORM', 'BUILDOS', 'BUILDARCH', 'BUILDVARIANT'];

describe('platform build args', () => {
  let f: CliFixture;
  let ctx: string;

  beforeAll(async () => {
    f = await startCliFixture('platform-args');
    ctx = await f.context('args', {
      Dockerfile: [
        `FROM --platform=$BUILDPLATFORM ${f.base} AS build`,
        `ARG ${ARGS.join(' ')}`,
        `RUN for v in ${ARGS.map((a) => `"${a}=$${a}"`).join(' ')}; do echo "$v"; done > /args && echo "uname=$(uname -m)" >> /args`,
        'FROM scratch',
        // Undeclared in this stage: the global scope has them for FROM only, RUN and COPY do not.
        'COPY --from=build /args /args',
        '',
      ].join('\n'),
    });
  });
  afterAll(async () => {
    await f?.close();
  });

  const host = hostPlatform();
  const hostArgs = [`BUILDPLATFORM=${platformString(host)}`, `BUILDOS=${host.os}`, `BUILDARCH=${host.architecture}`, `BUILDVARIANT=${host.variant ?? ''}`];

  it.each([
    ['linux/arm64', ['TARGETPLATFORM=linux/arm64', 'TARGETOS=linux', 'TARGETARCH=arm64', 'TARGETVARIANT=']],
    ['linux/aarch64', ['TARGETPLATFORM=linux/arm64', 'TARGETOS=linux', 'TARGETARCH=arm64', 'TARGETVARIANT=']],
    ['linux/arm', ['TARGETPLATFORM=linux/arm/v7', 'TARGETOS=linux', 'TARGETARCH=arm', 'TARGETVARIANT=v7']],
    ['linux/amd64', ['TARGETPLATFORM=linux/amd64', 'TARGETOS=linux', 'TARGETARCH=amd64', 'TARGETVARIANT=']],
  ])('--platform %s', async (platform, target) => {
    const out = path.join(f.tmp, `out-${platform.replaceAll('/', '_')}`);
    const r = await f.build(['--progress', 'plain', '--platform', platform, '-o', `type=local,dest=${out}`, ctx]);
    expect(r.code, r.stderr).toBe(0);
    const lines = (await readFile(path.join(out, 'args'), 'utf8')).trim().split('\n');
    expect(lines).toEqual([...target, ...hostArgs, `uname=${process.arch === 'x64' ? 'x86_64' : process.arch}`]);
  });
});
